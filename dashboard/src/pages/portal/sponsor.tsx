import { type FormEvent, useState } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { useAction, useQuery } from '../../data.ts';
import { setQuery, useLocation } from '../../router.tsx';
import { mayManage, useSignedIn } from '../../session.tsx';
import { Loading, Notice, ProblemAlert } from '../../ui/feedback.tsx';
import { formatDate, formatMoney } from '../../ui/format.ts';
import { StatusBadge } from '../../ui/status.tsx';
import { type Membership, OrganizationPage, PageHead, Table } from './common.tsx';

type Instance = Schemas['Instance'];

/** The page as the public sees it: open with its headline, or closed (404). */
async function publicState(domain: string): Promise<{ enabled: boolean; headline: string }> {
  const { data, response } = await api.GET('/v1/sponsor-pages/{domain}', { params: { path: { domain } } });
  if (response.status === 404) return { enabled: false, headline: '' };
  const page = await ok(Promise.resolve({ data, response }));
  return { enabled: true, headline: page.headline ?? '' };
}

function Settings({ server, organizationId }: { server: Instance; organizationId: string }) {
  const session = useSignedIn();
  const current = useQuery(() => publicState(server.domain), [server.domain]);
  const action = useAction();
  const [edit, setEdit] = useState<{ enabled: boolean; headline: string }>();
  const [saved, setSaved] = useState(false);
  if (!current.data) return <Loading problem={current.error} lines={4} />;
  const form = edit ?? current.data;
  const allowed = mayManage(session, organizationId);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setSaved(false);
    const done = await action.run(() =>
      ok(
        api.PUT('/v1/instances/{id}/sponsor-page', {
          params: { path: { id: server.id } },
          body: { enabled: form.enabled, headline: form.headline.trim() || null },
        }),
      ),
    );
    setSaved(done);
  };

  return (
    <form className="card stack" onSubmit={submit} aria-labelledby="settings">
      <h2 id="settings">Public page</h2>
      <label>
        <input
          type="checkbox"
          checked={form.enabled}
          disabled={!allowed}
          onChange={(e) => setEdit({ ...form, enabled: e.target.checked })}
        />{' '}
        Open the sponsor page: anyone can sponsor {server.domain}
      </label>
      <label htmlFor="headline">Headline</label>
      <input
        id="headline"
        maxLength={200}
        disabled={!allowed}
        aria-describedby="headline-hint"
        value={form.headline}
        onChange={(e) => setEdit({ ...form, headline: e.target.value })}
      />
      <p id="headline-hint" className="hint">
        One line above the tiers, such as “Keep our server running”.
      </p>
      <p>
        The page: <a href={`/sponsor/${server.domain}`}>/sponsor/{server.domain}</a>
        {form.enabled ? null : <span className="muted"> (closed)</span>}
      </p>
      <ProblemAlert problem={action.error} />
      {saved ? <Notice>Saved.</Notice> : null}
      {allowed ? (
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Saving…' : 'Save'}
        </button>
      ) : (
        <p className="hint">Owners, admins and billing members can change the page.</p>
      )}
    </form>
  );
}

function Sponsorships({ server }: { server: Instance }) {
  const list = useQuery(
    () => ok(api.GET('/v1/instances/{id}/sponsorships', { params: { path: { id: server.id } } })),
    [server.id],
  );
  return (
    <>
      <h2>Sponsors</h2>
      <Table
        label="Sponsorships"
        columns={['Sponsor', 'Tier', 'Status', 'Monthly', 'Paid in total', 'Since']}
        rows={list.data?.data}
        problem={list.error}
        empty="Nobody sponsors this server yet."
        row={(s) => (
          <tr key={s.id}>
            <td>
              {s.displayName ?? s.email}
              {s.showName ? null : <span className="hint"> (not shown)</span>}
            </td>
            <td>{s.tier}</td>
            <td>
              <StatusBadge status={s.status} />
            </td>
            <td>{formatMoney(s.price.amountMinor, s.price.currency)}</td>
            <td>{formatMoney(s.totalPaid.amountMinor, s.totalPaid.currency)}</td>
            <td>{formatDate(s.startedAt ?? s.createdAt)}</td>
          </tr>
        )}
      />
    </>
  );
}

function Sponsor({ membership }: { membership: Membership }) {
  const { query } = useLocation();
  const servers = useQuery(() => ok(api.GET('/v1/instances', { params: { query: { limit: 200 } } })), []);
  if (!servers.data) return <Loading problem={servers.error} lines={6} />;
  const mine = servers.data.data.filter(
    (s) => s.organizationId === membership.organizationId && s.status !== 'deleted',
  );
  const server =
    mine.find((s) => s.id === query.get('server')) ?? mine.find((s) => s.status === 'running') ?? mine[0];
  if (!server) return <p className="card">Your organization has no server yet.</p>;
  return (
    <>
      <p className="filters">
        <label htmlFor="server">
          Server
          <select
            id="server"
            value={server.id}
            onChange={(e) => setQuery('/sponsor', { server: e.target.value })}
          >
            {mine.map((s) => (
              <option key={s.id} value={s.id}>
                {s.domain}
              </option>
            ))}
          </select>
        </label>
      </p>
      <Settings key={server.id} server={server} organizationId={membership.organizationId} />
      <Sponsorships server={server} />
    </>
  );
}

export default function SponsorPage() {
  return (
    <OrganizationPage title="Sponsor page">
      {(membership) => (
        <>
          <PageHead title="Sponsor page" />
          <p className="hint">
            Members of your community can pay toward a server's costs on its public page.
          </p>
          <Sponsor membership={membership} />
        </>
      )}
    </OrganizationPage>
  );
}
