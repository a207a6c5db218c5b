/**
 * One server, for ops staff and for its organization's members: what it is, its live
 * provisioning and operation timeline, and the actions the caller may take. Staff also see
 * the rendered manifests and the add-on plan; members see usage, add-ons, backups and their
 * subscription. A viewer sees everything and is offered no action.
 */
import { useCallback, useRef, useState } from 'react';
import { api, ok, type Schemas } from '../api.ts';
import { type Action, useAction, useQuery } from '../data.ts';
import { roleIn, type Session, useSignedIn } from '../session.tsx';
import { ConfirmDialog } from '../ui/dialog.tsx';
import { Loading, Notice, ProblemAlert } from '../ui/feedback.tsx';
import { formatDateTime, humanize } from '../ui/format.ts';
import { StatusBadge } from '../ui/status.tsx';
import { AddonPlan, Addons, Backups, Manifests, SubscriptionCard, Usage } from './instance/sections.tsx';
import { Events, Operations, useEventStream } from './instance/timeline.tsx';

export type Instance = Schemas['InstanceDetail'];

/** What the caller may do to this server, from their role in its organization. */
export interface Powers {
  staff: boolean;
  /** Change the plan and add-ons, cancel: owners, admins, billing, staff. */
  manage: boolean;
  /** Upgrade, delete, restore, back up: owners, admins, staff. */
  operate: boolean;
}

function powersOf(session: Session, instance: Instance): Powers {
  const role = roleIn(session, instance.organizationId);
  return {
    staff: role === 'staff',
    manage: role === 'staff' || role === 'owner' || role === 'admin' || role === 'billing',
    operate: role === 'staff' || role === 'owner' || role === 'admin',
  };
}

type Dialog = 'suspend' | 'delete' | 'upgrade' | 'resize' | null;

const ifMatch = (instance: Instance) => ({ 'If-Match': `"${instance.generation}"` });

function ActionBar({
  instance,
  powers,
  action,
  changed,
}: {
  instance: Instance;
  powers: Powers;
  action: Action;
  changed: () => void;
}) {
  const [dialog, setDialog] = useState<Dialog>(null);
  const [reason, setReason] = useState('');
  const [version, setVersion] = useState('');
  const [plan, setPlan] = useState(instance.plan.code);
  const plans = useQuery(() => ok(api.GET('/v1/plans')), []);
  const path = { params: { path: { id: instance.id } } };
  const act = (change: () => Promise<unknown>) => {
    setDialog(null);
    action.run(change).then((done) => done && changed());
  };
  const { status } = instance;
  const busy = action.busy;
  return (
    <fieldset className="actions">
      <legend className="visually-hidden">Actions</legend>
      {powers.staff && status === 'failed' ? (
        <button
          type="button"
          disabled={busy}
          onClick={() => act(() => ok(api.POST('/v1/instances/{id}/retry', path)))}
        >
          Retry
        </button>
      ) : null}
      {powers.staff && status === 'running' ? (
        <button type="button" disabled={busy} onClick={() => setDialog('suspend')}>
          Suspend
        </button>
      ) : null}
      {powers.staff && status === 'suspended' ? (
        <button
          type="button"
          disabled={busy}
          onClick={() => act(() => ok(api.POST('/v1/instances/{id}/resume', path)))}
        >
          Resume
        </button>
      ) : null}
      {powers.operate && status === 'running' ? (
        <button type="button" disabled={busy} onClick={() => setDialog('upgrade')}>
          Upgrade Mastodon
        </button>
      ) : null}
      {powers.manage && (status === 'running' || status === 'suspended') ? (
        <button type="button" disabled={busy} onClick={() => setDialog('resize')}>
          Change plan
        </button>
      ) : null}
      {powers.operate && status === 'deleting' ? (
        <button
          type="button"
          disabled={busy}
          onClick={() => act(() => ok(api.POST('/v1/instances/{id}/restore', path)))}
        >
          Restore
        </button>
      ) : null}
      {powers.operate && status !== 'deleting' && status !== 'deleted' && status !== 'pending_payment' ? (
        <button type="button" className="danger" disabled={busy} onClick={() => setDialog('delete')}>
          Delete
        </button>
      ) : null}

      {dialog === 'suspend' ? (
        <ConfirmDialog
          title={`Suspend ${instance.domain}?`}
          confirmLabel="Suspend"
          onClose={() => setDialog(null)}
          onConfirm={() =>
            act(() => ok(api.POST('/v1/instances/{id}/suspend', { ...path, body: reason ? { reason } : {} })))
          }
        >
          <p>The server stops; its data is kept. The reason is shown to its organization.</p>
          <label htmlFor="suspend-reason">Reason (optional)</label>
          <input
            id="suspend-reason"
            value={reason}
            maxLength={500}
            onChange={(event) => setReason(event.target.value)}
          />
        </ConfirmDialog>
      ) : null}
      {dialog === 'upgrade' ? (
        <ConfirmDialog
          title={`Upgrade ${instance.domain}`}
          confirmLabel="Upgrade"
          onClose={() => setDialog(null)}
          onConfirm={() =>
            act(() =>
              ok(
                api.PATCH('/v1/instances/{id}', {
                  ...path,
                  params: { ...path.params, header: ifMatch(instance) },
                  body: { mastodonVersion: version },
                }),
              ),
            )
          }
        >
          <p>
            Now on <strong>{instance.mastodonVersion}</strong>. Mastodon cannot be downgraded.
          </p>
          <label htmlFor="upgrade-version">New version</label>
          <input
            id="upgrade-version"
            value={version}
            placeholder="v4.5.2"
            pattern="v\d+\.\d+\.\d+"
            onChange={(event) => setVersion(event.target.value.trim())}
          />
        </ConfirmDialog>
      ) : null}
      {dialog === 'resize' ? (
        <ConfirmDialog
          title={`Change the plan of ${instance.domain}`}
          confirmLabel="Change plan"
          onClose={() => setDialog(null)}
          onConfirm={() =>
            act(() =>
              ok(
                api.PATCH('/v1/instances/{id}', {
                  ...path,
                  params: { ...path.params, header: ifMatch(instance) },
                  body: { plan },
                }),
              ),
            )
          }
        >
          <p>The server is resized at once; the price changes from today, prorated.</p>
          <label htmlFor="resize-plan">Plan</label>
          <select id="resize-plan" value={plan} onChange={(event) => setPlan(event.target.value)}>
            {plans.data?.data.map((option) => (
              <option key={option.code} value={option.code}>
                {option.name}
              </option>
            ))}
          </select>
        </ConfirmDialog>
      ) : null}
      {dialog === 'delete' ? (
        <ConfirmDialog
          title={`Delete ${instance.domain}?`}
          confirmLabel="Delete server"
          danger
          typed={instance.domain}
          onClose={() => setDialog(null)}
          onConfirm={() => act(() => ok(api.DELETE('/v1/instances/{id}', path)))}
        >
          <p>
            The server stops now and is purged when the grace period ends; until then it can be restored. The
            domain is never given to another server.
          </p>
        </ConfirmDialog>
      ) : null}
    </fieldset>
  );
}

function Overview({ instance }: { instance: Instance }) {
  return (
    <dl className="facts">
      <dt>Plan</dt>
      <dd>{instance.plan.name}</dd>
      <dt>Mastodon</dt>
      <dd>
        {instance.mastodonVersion} ({instance.flavor})
      </dd>
      <dt>Cluster</dt>
      <dd>{instance.cluster?.name ?? '—'}</dd>
      <dt>Add-ons</dt>
      <dd>{instance.addons.length ? instance.addons.map(humanize).join(', ') : 'none'}</dd>
      <dt>Generation</dt>
      <dd>
        {instance.observedGeneration} of {instance.generation} applied
      </dd>
      <dt>Created</dt>
      <dd>{formatDateTime(instance.createdAt)}</dd>
    </dl>
  );
}

export default function InstancePage({ params }: { params: Record<string, string> }) {
  const id = params.id ?? '';
  const session = useSignedIn();
  const action = useAction();
  const detail = useQuery(() => ok(api.GET('/v1/instances/{id}', { params: { path: { id } } })), [id]);
  const [live, setLive] = useState<Schemas['Event'][]>([]);
  const refresh = useRef<number>(undefined);
  const reload = detail.reload;
  // Each event may end a step: the operations are read again, at most every 300 ms.
  const onEvent = useCallback(
    (event: Schemas['Event']) => {
      setLive((was) => (was.some((e) => e.id === event.id) ? was : [...was, event]));
      window.clearTimeout(refresh.current);
      refresh.current = window.setTimeout(reload, 300);
    },
    [reload],
  );
  const instance = detail.data;
  const lastShown = instance ? (instance.events.at(-1)?.id ?? '') : undefined;
  const stream = useEventStream(id, lastShown, onEvent);

  if (!instance) return <Loading problem={detail.error} lines={8} />;
  const powers = powersOf(session, instance);
  const events = [
    ...instance.events,
    ...live.filter((e) => !instance.events.some((shown) => shown.id === e.id)),
  ];

  return (
    <>
      <div className="page-head">
        <h1>
          {instance.domain} <StatusBadge status={instance.status} />
          {instance.dryRun ? <span className="badge tone-mute">dry-run</span> : null}
        </h1>
        <ActionBar instance={instance} powers={powers} action={action} changed={reload} />
      </div>
      <ProblemAlert problem={action.error} />
      {instance.statusReason ? <p className="warning">{instance.statusReason}</p> : null}
      {instance.deleteAfter ? (
        <p className="warning">
          Deleted: it will be purged on {formatDateTime(instance.deleteAfter)} unless restored.
        </p>
      ) : null}
      {instance.dryRun && instance.status === 'running' ? (
        <Notice>
          Provisioned in dry-run: every object is rendered and stored, nothing runs on a cluster.
        </Notice>
      ) : null}
      <div className="grid two">
        <section className="card" aria-labelledby="overview-title">
          <h2 id="overview-title">Overview</h2>
          <Overview instance={instance} />
        </section>
        <section className="card" aria-labelledby="events-title">
          <h2 id="events-title">
            Events <span className={`live live-${stream}`}>{stream === 'live' ? 'live' : stream}</span>
          </h2>
          <Events events={events} />
        </section>
      </div>
      <section className="card" aria-labelledby="timeline-title">
        <h2 id="timeline-title">Operations</h2>
        <Operations operations={instance.operations} />
      </section>
      <Usage instance={instance} />
      <Addons instance={instance} powers={powers} changed={reload} />
      {powers.manage ? <SubscriptionCard instance={instance} /> : null}
      <Backups instance={instance} powers={powers} />
      {powers.staff ? (
        <>
          <AddonPlan instance={instance} />
          <Manifests instance={instance} />
        </>
      ) : null}
    </>
  );
}
