/**
 * The fleet: how many servers there are by status, plan and cluster, and every server in
 * pages, filtered by those and by part of the domain. Filters live in the address, so a
 * filtered view can be bookmarked and shared.
 */
import { useEffect, useState } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { Link, setQuery, useLocation } from '../../router.tsx';
import { ProblemAlert, Skeleton, SkeletonRows } from '../../ui/feedback.tsx';
import { formatDateTime, formatNumber, humanize } from '../../ui/format.ts';
import { Pager, useCursorPages } from '../../ui/pager.tsx';
import { StatusBadge } from '../../ui/status.tsx';

const STATUSES: Schemas['InstanceStatus'][] = [
  'pending_payment',
  'provisioning',
  'running',
  'updating',
  'suspended',
  'failed',
  'deleting',
  'deleted',
];
const PAGE_SIZE = 50;
const REFRESH_MS = 5000;

type Filters = { status?: string; plan?: string; cluster?: string; q?: string };

function Summary({ summary, filters }: { summary: Schemas['FleetSummary'] | undefined; filters: Filters }) {
  const filterBy = (name: keyof Filters, value: string) => setQuery('/fleet', { ...filters, [name]: value });
  return (
    <div className="grid summary">
      <section className="card" aria-labelledby="by-status">
        <h2 id="by-status">
          By status{' '}
          <span className="muted">
            · {summary ? `${formatNumber(summary.total)} ${summary.total === 1 ? 'server' : 'servers'}` : '…'}
          </span>
        </h2>
        <ul className="counts">
          {STATUSES.map((status) => (
            <li key={status}>
              <button type="button" className="link" onClick={() => filterBy('status', status)}>
                <StatusBadge status={status} />
              </button>
              <span className="count">
                {summary ? formatNumber(summary.byStatus[status] ?? 0) : <Skeleton width="2em" />}
              </span>
            </li>
          ))}
        </ul>
      </section>
      <section className="card" aria-labelledby="by-plan">
        <h2 id="by-plan">By plan</h2>
        <ul className="counts">
          {summary
            ? summary.byPlan.map((plan) => (
                <li key={plan.code}>
                  <button type="button" className="link" onClick={() => filterBy('plan', plan.code)}>
                    {plan.name}
                  </button>
                  <span className="count">{formatNumber(plan.count)}</span>
                </li>
              ))
            : [1, 2, 3].map((n) => (
                <li key={n}>
                  <Skeleton width="60%" />
                </li>
              ))}
        </ul>
      </section>
      <section className="card" aria-labelledby="by-cluster">
        <h2 id="by-cluster">By cluster</h2>
        <ul className="counts">
          {summary
            ? summary.byCluster.map((cluster) => (
                <li key={cluster.name ?? '-'}>
                  {cluster.name ? (
                    <button
                      type="button"
                      className="link"
                      onClick={() => filterBy('cluster', cluster.name ?? '')}
                    >
                      {cluster.name}
                    </button>
                  ) : (
                    <span className="muted">none yet</span>
                  )}
                  <span className="count">
                    {formatNumber(cluster.count)}
                    {cluster.capacity !== null ? (
                      <span className="muted"> / {formatNumber(cluster.capacity)}</span>
                    ) : null}
                  </span>
                </li>
              ))
            : [1, 2, 3].map((n) => (
                <li key={n}>
                  <Skeleton width="60%" />
                </li>
              ))}
        </ul>
      </section>
    </div>
  );
}

export default function Fleet() {
  const { query } = useLocation();
  const filters: Filters = {
    status: query.get('status') ?? undefined,
    plan: query.get('plan') ?? undefined,
    cluster: query.get('cluster') ?? undefined,
    q: query.get('q') ?? undefined,
  };
  const key = JSON.stringify(filters);
  const pages = useCursorPages();
  const [search, setSearch] = useState(filters.q ?? '');

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new filter starts from page 1
  useEffect(() => pages.reset(), [key]);

  // Typing narrows the list after a pause, not at every key.
  // biome-ignore lint/correctness/useExhaustiveDependencies: only the typed text triggers it
  useEffect(() => {
    const timer = window.setTimeout(() => {
      if ((filters.q ?? '') !== search.trim())
        setQuery('/fleet', { ...filters, q: search.trim() || undefined });
    }, 250);
    return () => window.clearTimeout(timer);
  }, [search]);

  const summary = useQuery(() => ok(api.GET('/v1/fleet/summary')), [], { refreshMs: REFRESH_MS });
  const plans = useQuery(() => ok(api.GET('/v1/plans')), []);
  const list = useQuery(
    () =>
      ok(
        api.GET('/v1/instances', {
          params: {
            query: {
              status: filters.status as Schemas['InstanceStatus'] | undefined,
              plan: filters.plan,
              cluster: filters.cluster,
              q: filters.q,
              limit: PAGE_SIZE,
              cursor: pages.cursor,
            },
          },
        }),
      ),
    [key, pages.cursor],
    { refreshMs: REFRESH_MS },
  );

  const change = (name: keyof Filters) => (event: { target: { value: string } }) =>
    setQuery('/fleet', { ...filters, [name]: event.target.value || undefined });

  return (
    <>
      <div className="page-head">
        <h1>Fleet</h1>
      </div>
      <ProblemAlert problem={summary.error} />
      <Summary summary={summary.data} filters={filters} />
      <form className="filters" aria-label="Filter servers" onSubmit={(event) => event.preventDefault()}>
        <label>
          Search domain
          <input
            type="search"
            value={search}
            onChange={(event) => setSearch(event.target.value)}
            placeholder="chess.example"
          />
        </label>
        <label>
          Status
          <select value={filters.status ?? ''} onChange={change('status')}>
            <option value="">Any status</option>
            {STATUSES.map((status) => (
              <option key={status} value={status}>
                {humanize(status)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Plan
          <select value={filters.plan ?? ''} onChange={change('plan')}>
            <option value="">Any plan</option>
            {plans.data?.data.map((plan) => (
              <option key={plan.code} value={plan.code}>
                {plan.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Cluster
          <select value={filters.cluster ?? ''} onChange={change('cluster')}>
            <option value="">Any cluster</option>
            {summary.data?.byCluster.flatMap((cluster) =>
              cluster.name
                ? [
                    <option key={cluster.name} value={cluster.name}>
                      {cluster.name}
                    </option>,
                  ]
                : [],
            )}
          </select>
        </label>
        {key !== '{}' ? (
          <button
            type="button"
            onClick={() => {
              setSearch('');
              setQuery('/fleet', {});
            }}
          >
            Clear filters
          </button>
        ) : null}
      </form>
      <ProblemAlert problem={list.error} />
      <div className="table-wrap">
        <table>
          <caption className="visually-hidden">Servers</caption>
          <thead>
            <tr>
              <th scope="col">Domain</th>
              <th scope="col">Status</th>
              <th scope="col">Plan</th>
              <th scope="col">Cluster</th>
              <th scope="col">Version</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {list.data ? (
              list.data.data.map((instance) => (
                <tr key={instance.id}>
                  <td>
                    <Link to={`/instances/${instance.id}`}>{instance.domain}</Link>
                  </td>
                  <td>
                    <StatusBadge status={instance.status} />
                    {instance.dryRun ? <span className="muted"> dry-run</span> : null}
                  </td>
                  <td>{instance.plan.name}</td>
                  <td>{instance.cluster?.name ?? '—'}</td>
                  <td>{instance.mastodonVersion}</td>
                  <td>{formatDateTime(instance.updatedAt)}</td>
                </tr>
              ))
            ) : (
              <SkeletonRows rows={10} columns={6} />
            )}
            {list.data?.data.length === 0 ? (
              <tr>
                <td colSpan={6} className="muted">
                  No server matches.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <Pager pages={pages} nextCursor={list.data?.nextCursor} />
    </>
  );
}
