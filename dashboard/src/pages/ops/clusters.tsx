/**
 * The clusters servers are placed on, for staff: where each runs, and how full it is (a meter
 * with the numbers in words, so the colour is never the only clue). Refreshed every 30 s.
 */
import { api, ok, type Schemas } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { Link } from '../../router.tsx';
import { formatDate, formatNumber, humanize } from '../../ui/format.ts';
import { Table } from '../portal/common.tsx';

type Cluster = Schemas['Cluster'];

/** How full a cluster is: a meter that warns from 80 % and alarms from 95 %, and its words. */
function CapacityMeter({ cluster }: { cluster: Cluster }) {
  const max = Math.max(1, cluster.capacity);
  const label = `${formatNumber(cluster.instances)} of ${formatNumber(cluster.capacity)}`;
  return (
    <span className="capacity">
      <meter
        min={0}
        max={max}
        value={Math.min(cluster.instances, max)}
        low={max * 0.8}
        high={max * 0.95}
        optimum={0}
        aria-label={`${cluster.name}: ${label} servers`}
        style={{ width: '8rem', verticalAlign: 'middle' }}
      />{' '}
      <span>{label}</span>
    </span>
  );
}

export default function ClustersPage() {
  const clusters = useQuery(() => ok(api.GET('/v1/clusters')), [], { refreshMs: 30_000 });
  const list = clusters.data?.data;
  const used = list?.reduce((sum, cluster) => sum + cluster.instances, 0) ?? 0;
  const capacity = list?.reduce((sum, cluster) => sum + cluster.capacity, 0) ?? 0;
  return (
    <>
      <div className="page-head">
        <h1>Clusters</h1>
        <span className="muted">
          {list
            ? `${formatNumber(list.length)} clusters · ${formatNumber(used)} of ${formatNumber(capacity)} places used`
            : '…'}
        </span>
      </div>
      <Table
        label="Clusters"
        columns={['Name', 'Region', 'Target', 'Servers', 'Free', 'Added']}
        rows={list}
        problem={clusters.error}
        skeleton={4}
        empty={
          <>
            No clusters yet: add one with <code>woolly cluster add</code>.
          </>
        }
        row={(cluster) => (
          <tr key={cluster.id}>
            <td>
              <Link to={`/fleet?cluster=${encodeURIComponent(cluster.name)}`}>{cluster.name}</Link>
            </td>
            <td>{cluster.region}</td>
            <td>{humanize(cluster.target)}</td>
            <td>
              <CapacityMeter cluster={cluster} />
            </td>
            <td>{cluster.free === 0 ? <strong>Full</strong> : formatNumber(cluster.free)}</td>
            <td>{formatDate(cluster.createdAt)}</td>
          </tr>
        )}
      />
    </>
  );
}
