import { useEffect, useState } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { Link } from '../../router.tsx';
import { Loading, ProblemAlert, Skeleton } from '../../ui/feedback.tsx';
import { formatDate, humanize } from '../../ui/format.ts';
import { StatusBadge } from '../../ui/status.tsx';
import { OrganizationPage, PageHead } from './common.tsx';

type Instance = Schemas['Instance'];

const IN_PROGRESS = new Set<string>(['provisioning', 'updating', 'deleting']);

function ServerCard({ server }: { server: Instance }) {
  const headingId = `server-${server.id}`;
  return (
    <article className="card" aria-labelledby={headingId}>
      <h2 id={headingId}>
        <Link to={`/instances/${server.id}`}>{server.domain}</Link>
      </h2>
      <dl className="facts">
        <dt>Plan</dt>
        <dd>{server.plan.name}</dd>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={server.status} />
        </dd>
        <dt>Since</dt>
        <dd>{formatDate(server.createdAt)}</dd>
      </dl>
      {server.statusReason ? <p className="hint">{server.statusReason}</p> : null}
      {IN_PROGRESS.has(server.status) ? (
        <p>
          <progress aria-label={`${humanize(server.status)} ${server.domain}`} />
        </p>
      ) : null}
      {server.status === 'pending_payment' ? (
        <p className="hint">Waiting for payment or approval before it is set up.</p>
      ) : null}
    </article>
  );
}

function SkeletonCard() {
  return (
    <div className="card" aria-hidden="true">
      <Skeleton width="60%" height="1.5rem" />
      <div className="skeleton-block" style={{ marginTop: '0.75rem' }}>
        <Skeleton height="1.3rem" />
        <Skeleton height="1.3rem" />
        <Skeleton height="1.3rem" />
      </div>
    </div>
  );
}

function Servers({ organizationId }: { organizationId: string }) {
  const [polling, setPolling] = useState(false);
  const servers = useQuery(
    () => ok(api.GET('/v1/instances', { params: { query: { limit: 200 } } })),
    [organizationId],
    { refreshMs: polling ? 3000 : undefined },
  );
  const mine = servers.data?.data.filter((server) => server.organizationId === organizationId);
  const busy = mine?.some((server) => IN_PROGRESS.has(server.status)) ?? false;
  useEffect(() => setPolling(busy), [busy]);

  if (!mine) {
    return servers.error ? (
      <Loading problem={servers.error} />
    ) : (
      <div className="grid" aria-busy="true">
        <span className="visually-hidden">Loading…</span>
        <SkeletonCard />
        <SkeletonCard />
        <SkeletonCard />
      </div>
    );
  }
  if (mine.length === 0) {
    return (
      <p className="card">
        You have no servers yet. <Link to="/order">Order your first server</Link>.
      </p>
    );
  }
  return (
    <>
      <ProblemAlert problem={servers.error} />
      <div className="grid">
        {mine.map((server) => (
          <ServerCard key={server.id} server={server} />
        ))}
      </div>
    </>
  );
}

export default function MyServers() {
  return (
    <OrganizationPage title="My servers">
      {(membership) => (
        <>
          <PageHead title="My servers">
            <Link to="/order">Order a server</Link>
          </PageHead>
          <Servers organizationId={membership.organizationId} />
        </>
      )}
    </OrganizationPage>
  );
}
