/**
 * Fleet upgrades, for staff: start one (a Mastodon version, a wave size, optionally only one
 * cluster or one old version), watch it wave by wave (refreshed every 2 s while one runs),
 * open one to see its waves and servers, and stop it so that no further wave starts.
 */
import { type FormEvent, useEffect, useState } from 'react';
import { api, idempotencyKey, ok, type Schemas } from '../../api.ts';
import { useAction, useQuery } from '../../data.ts';
import { Link } from '../../router.tsx';
import { ConfirmDialog } from '../../ui/dialog.tsx';
import { Loading, Notice, ProblemAlert } from '../../ui/feedback.tsx';
import { formatDateTime, formatNumber } from '../../ui/format.ts';
import { Pager, useCursorPages } from '../../ui/pager.tsx';
import { StatusBadge } from '../../ui/status.tsx';
import { Table } from '../portal/common.tsx';

type Upgrade = Schemas['FleetUpgrade'];
const LIVE_MS = 2000;
const STATES = ['upgrading', 'failed', 'skipped', 'pending'] as const;
const VERSION = 'v[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}';

function Progress({ upgrade }: { upgrade: Upgrade }) {
  const counts = upgrade.servers;
  const total = counts.pending + counts.upgrading + counts.succeeded + counts.failed + counts.skipped;
  const done = total - counts.pending - counts.upgrading;
  const rest = STATES.filter((state) => counts[state] > 0).map((state) => `${counts[state]} ${state}`);
  return (
    <div style={{ minWidth: '12rem' }}>
      <progress max={Math.max(1, total)} value={done} aria-label={`Upgrade to ${upgrade.mastodonVersion}`} />
      <div>
        {formatNumber(counts.succeeded)} of {formatNumber(total)} upgraded
        {rest.length > 0 ? <span className="hint"> · {rest.join(' · ')}</span> : null}
      </div>
    </div>
  );
}

function Detail({ id, live }: { id: string; live: boolean }) {
  const detail = useQuery(
    () => ok(api.GET('/v1/fleet-upgrades/{id}', { params: { path: { id } } })),
    [id],
    live ? { refreshMs: LIVE_MS } : {},
  );
  if (!detail.data) return <Loading problem={detail.error} lines={4} />;
  const { waves, members } = detail.data;
  return (
    <div className="grid two">
      <Table
        label="Waves"
        columns={['Wave', 'Pending', 'Upgrading', 'Succeeded', 'Failed', 'Skipped']}
        rows={waves}
        empty="No waves."
        row={(w) => (
          <tr key={w.wave}>
            <td>{w.wave}</td>
            <td>{w.pending}</td>
            <td>{w.upgrading}</td>
            <td>{w.succeeded}</td>
            <td>{w.failed}</td>
            <td>{w.skipped}</td>
          </tr>
        )}
      />
      <Table
        label="Servers"
        columns={['Server', 'Wave', 'Status', 'From', 'Finished', 'Note']}
        rows={members}
        empty="No servers."
        row={(m) => (
          <tr key={m.instanceId}>
            <td>{m.domain ? <Link to={`/instances/${m.instanceId}`}>{m.domain}</Link> : 'gone'}</td>
            <td>{m.wave}</td>
            <td>
              <StatusBadge status={m.status} />
            </td>
            <td>{m.fromVersion}</td>
            <td>{formatDateTime(m.finishedAt)}</td>
            <td className="wrap">{m.note ?? ''}</td>
          </tr>
        )}
      />
    </div>
  );
}

function Row({ upgrade, onChanged }: { upgrade: Upgrade; onChanged: () => void }) {
  const [open, setOpen] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const stop = useAction();
  const running = upgrade.status === 'running';
  const detailId = `upgrade-${upgrade.id}`;
  return (
    <>
      <tr>
        <td>
          <strong>{upgrade.mastodonVersion}</strong>
          <div className="hint">
            {upgrade.fromVersion ? `from ${upgrade.fromVersion}` : 'any older version'}
            {upgrade.clusterId ? ' · one cluster' : ''} · waves of {upgrade.waveSize}
          </div>
        </td>
        <td className="wrap">
          <StatusBadge status={upgrade.status} />
          {upgrade.reason ? <div className="hint">{upgrade.reason}</div> : null}
        </td>
        <td>
          <Progress upgrade={upgrade} />
        </td>
        <td>
          {upgrade.currentWave} of {upgrade.waveCount}
        </td>
        <td>{formatDateTime(upgrade.createdAt)}</td>
        <td>{formatDateTime(upgrade.finishedAt)}</td>
        <td>
          <div className="actions in-row">
            <button
              type="button"
              aria-expanded={open}
              aria-controls={detailId}
              onClick={() => setOpen(!open)}
            >
              {open ? 'Hide' : 'Details'}
              <span className="visually-hidden"> of the upgrade to {upgrade.mastodonVersion}</span>
            </button>
            {running ? (
              <button
                type="button"
                className="danger"
                disabled={stop.busy}
                onClick={() => setConfirming(true)}
              >
                {stop.busy ? 'Stopping…' : 'Stop'}
                <span className="visually-hidden"> the upgrade to {upgrade.mastodonVersion}</span>
              </button>
            ) : null}
          </div>
          <ProblemAlert problem={stop.error} />
          {confirming ? (
            <ConfirmDialog
              title={`Stop the upgrade to ${upgrade.mastodonVersion}?`}
              confirmLabel="Stop upgrade"
              danger
              onClose={() => setConfirming(false)}
              onConfirm={async () => {
                setConfirming(false);
                const params = { path: { id: upgrade.id }, header: { 'Idempotency-Key': idempotencyKey() } };
                if (await stop.run(() => ok(api.POST('/v1/fleet-upgrades/{id}/stop', { params }))))
                  onChanged();
              }}
            >
              <p>
                No further wave starts. The servers of wave {upgrade.currentWave} finish on their own;{' '}
                {formatNumber(upgrade.servers.pending)} servers not reached keep their version.
              </p>
            </ConfirmDialog>
          ) : null}
        </td>
      </tr>
      {open ? (
        <tr id={detailId}>
          <td colSpan={7}>
            <Detail id={upgrade.id} live={running} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

function StartForm({ onStarted }: { onStarted: (upgrade: Schemas['FleetUpgradeDetail']) => void }) {
  const clusters = useQuery(() => ok(api.GET('/v1/clusters')), []);
  const [form, setForm] = useState({ mastodonVersion: '', waveSize: '10', clusterId: '', fromVersion: '' });
  const start = useAction();
  const set = (name: keyof typeof form) => (event: { target: { value: string } }) =>
    setForm({ ...form, [name]: event.target.value });
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const body = {
      mastodonVersion: form.mastodonVersion.trim(),
      waveSize: Number(form.waveSize),
      ...(form.clusterId ? { clusterId: form.clusterId } : {}),
      ...(form.fromVersion.trim() ? { fromVersion: form.fromVersion.trim() } : {}),
    };
    const params = { header: { 'Idempotency-Key': idempotencyKey() } };
    await start.run(async () => onStarted(await ok(api.POST('/v1/fleet-upgrades', { params, body }))));
  };
  return (
    <section className="card" aria-labelledby="start-upgrade">
      <h2 id="start-upgrade">Start an upgrade</h2>
      <form className="filters" onSubmit={submit}>
        <label htmlFor="upgrade-version">
          Target version
          <input
            id="upgrade-version"
            required
            pattern={VERSION}
            placeholder="v4.5.12"
            value={form.mastodonVersion}
            onChange={set('mastodonVersion')}
          />
        </label>
        <label htmlFor="upgrade-wave">
          Servers per wave
          <input
            id="upgrade-wave"
            type="number"
            required
            min={1}
            max={500}
            value={form.waveSize}
            onChange={set('waveSize')}
          />
        </label>
        <label htmlFor="upgrade-cluster">
          Cluster
          <select id="upgrade-cluster" value={form.clusterId} onChange={set('clusterId')}>
            <option value="">Every cluster</option>
            {clusters.data?.data.map((cluster) => (
              <option key={cluster.id} value={cluster.id}>
                {cluster.name} ({cluster.region})
              </option>
            ))}
          </select>
        </label>
        <label htmlFor="upgrade-from">
          Only from version
          <input
            id="upgrade-from"
            pattern={VERSION}
            placeholder="any older"
            value={form.fromVersion}
            onChange={set('fromVersion')}
          />
        </label>
        <button type="submit" className="primary" disabled={start.busy}>
          {start.busy ? 'Starting…' : 'Start upgrade'}
        </button>
      </form>
      <p className="hint">
        Running servers older than the target, oldest first; each wave starts once the one before runs the new
        version.
      </p>
      <ProblemAlert problem={start.error} />
    </section>
  );
}

export default function UpgradesPage() {
  const pages = useCursorPages();
  const [live, setLive] = useState(false);
  const [message, setMessage] = useState<string>();
  const list = useQuery(
    () => ok(api.GET('/v1/fleet-upgrades', { params: { query: { limit: 20, cursor: pages.cursor } } })),
    [pages.cursor],
    live ? { refreshMs: LIVE_MS } : {},
  );
  const running = list.data?.data.some((upgrade) => upgrade.status === 'running') ?? false;
  useEffect(() => setLive(running), [running]);
  return (
    <>
      <div className="page-head">
        <h1>Fleet upgrades</h1>
        {running ? <span className="badge tone-busy">Live</span> : null}
      </div>
      <StartForm
        onStarted={(upgrade) => {
          setMessage(
            `Upgrade to ${upgrade.mastodonVersion} started: ${upgrade.members.length} servers in ${upgrade.waveCount} waves.`,
          );
          pages.reset();
          list.reload();
        }}
      />
      {message ? <Notice>{message}</Notice> : null}
      <Table
        label="Fleet upgrades"
        columns={['Target', 'Status', 'Progress', 'Wave', 'Started', 'Finished', 'Actions']}
        rows={list.data?.data}
        problem={list.error}
        skeleton={4}
        empty="No fleet upgrade yet."
        row={(upgrade) => <Row key={upgrade.id} upgrade={upgrade} onChanged={list.reload} />}
      />
      <Pager pages={pages} nextCursor={list.data?.nextCursor} />
    </>
  );
}
