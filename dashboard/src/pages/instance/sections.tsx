/** The sections of a server's page below its timeline. */
import { api, idempotencyKey, ok } from '../../api.ts';
import { useAction, useQuery } from '../../data.ts';
import { ColumnChart } from '../../ui/charts.tsx';
import { Loading, ProblemAlert } from '../../ui/feedback.tsx';
import { formatDate, formatDateTime, formatMoney, meterTitle } from '../../ui/format.ts';
import { StatusBadge } from '../../ui/status.tsx';
import type { Instance, Powers } from '../instance.tsx';

const pathOf = (instance: Instance) => ({ params: { path: { id: instance.id } } });

/**
 * A plan's allowance is monthly: a summed meter (GB-hours, search hours) gets a day's share of
 * it; active users are counted over the month already, so each day compares with all of it.
 */
const dailyAllowance = (meter: string, included: number | null) =>
  included === null ? null : meter === 'active_users' ? included : (included * 24) / 730;

/** Usage by day against what the plan includes (the dashed line). */
export function Usage({ instance }: { instance: Instance }) {
  const usage = useQuery(() => ok(api.GET('/v1/instances/{id}/usage', pathOf(instance))), [instance.id]);
  return (
    <section className="card" aria-labelledby="usage-title">
      <h2 id="usage-title">Usage, last 30 days</h2>
      {usage.data ? (
        <div className="grid">
          {usage.data.meters.map((meter) => (
            <ColumnChart
              key={meter.meter}
              title={meterTitle(meter.meter)}
              unit={meter.unit}
              limit={dailyAllowance(meter.meter, meter.included)}
              points={meter.days.map((day) => ({ label: formatDate(day.date), value: day.quantity }))}
            />
          ))}
        </div>
      ) : (
        <Loading problem={usage.error} lines={4} />
      )}
      <p className="hint">The dashed line is the plan's allowance for a day.</p>
    </section>
  );
}

/** The add-ons the plan allows, each switched on or off (a change reconciles the server). */
export function Addons({
  instance,
  powers,
  changed,
}: {
  instance: Instance;
  powers: Powers;
  changed: () => void;
}) {
  const catalog = useQuery(() => ok(api.GET('/v1/addons')), []);
  const plans = useQuery(() => ok(api.GET('/v1/plans')), []);
  const action = useAction();
  const allowed = plans.data?.data.find((plan) => plan.code === instance.plan.code)?.addons ?? [];
  const toggle = (code: (typeof allowed)[number], on: boolean) =>
    action
      .run(() =>
        on
          ? ok(api.POST('/v1/instances/{id}/addons', { ...pathOf(instance), body: { code } }))
          : ok(
              api.DELETE('/v1/instances/{id}/addons/{code}', { params: { path: { id: instance.id, code } } }),
            ),
      )
      .then((done) => done && changed());
  const editable = powers.manage && (instance.status === 'running' || instance.status === 'suspended');
  return (
    <section className="card" aria-labelledby="addons-title">
      <h2 id="addons-title">Add-ons</h2>
      {catalog.data && plans.data ? (
        <ul className="plain">
          {catalog.data.data
            .filter((addon) => allowed.includes(addon.code))
            .map((addon) => (
              <li key={addon.code}>
                <label>
                  <input
                    type="checkbox"
                    checked={instance.addons.includes(addon.code)}
                    disabled={!editable || action.busy}
                    onChange={(event) => toggle(addon.code, event.target.checked)}
                  />{' '}
                  {addon.name}{' '}
                  <span className="muted">
                    {formatMoney(addon.price.amountMinor, addon.price.currency)} /{' '}
                    {addon.price.interval ?? 'month'} — {addon.description}
                  </span>
                </label>
              </li>
            ))}
        </ul>
      ) : (
        <Loading problem={catalog.error ?? plans.error} lines={2} />
      )}
      <ProblemAlert problem={action.error} />
    </section>
  );
}

/** The server's subscription: its period and price, and cancelling at the period's end. */
export function SubscriptionCard({ instance }: { instance: Instance }) {
  const subscription = useQuery(
    () => ok(api.GET('/v1/instances/{id}/subscription', pathOf(instance))),
    [instance.id],
  );
  const action = useAction();
  const setCancel = (cancelAtPeriodEnd: boolean) =>
    action
      .run(() =>
        ok(api.PUT('/v1/instances/{id}/subscription', { ...pathOf(instance), body: { cancelAtPeriodEnd } })),
      )
      .then((done) => done && subscription.reload());
  const data = subscription.data;
  return (
    <section className="card" aria-labelledby="subscription-title">
      <h2 id="subscription-title">Subscription</h2>
      {data ? (
        <>
          <dl className="facts">
            <dt>Status</dt>
            <dd>
              <StatusBadge status={data.status} />
            </dd>
            <dt>Price</dt>
            <dd>{formatMoney(data.price.amountMinor, data.price.currency)} a month</dd>
            <dt>Period</dt>
            <dd>
              {formatDate(data.currentPeriod.start)} – {formatDate(data.currentPeriod.end)}
            </dd>
            {data.graceEndsAt ? (
              <>
                <dt>Pay by</dt>
                <dd>{formatDateTime(data.graceEndsAt)}</dd>
              </>
            ) : null}
          </dl>
          {data.cancelAtPeriodEnd ? (
            <p className="warning">
              Ends on {formatDate(data.currentPeriod.end)}; the server is deleted then.{' '}
              <button type="button" disabled={action.busy} onClick={() => setCancel(false)}>
                Keep the subscription
              </button>
            </p>
          ) : data.status !== 'cancelled' ? (
            <div className="actions">
              <button type="button" disabled={action.busy} onClick={() => setCancel(true)}>
                Cancel at period end
              </button>
            </div>
          ) : null}
        </>
      ) : (
        <Loading problem={subscription.error?.status === 404 ? undefined : subscription.error} lines={3} />
      )}
      <ProblemAlert problem={action.error} />
    </section>
  );
}

/** Backups, newest first, and a request for a new one. */
export function Backups({ instance, powers }: { instance: Instance; powers: Powers }) {
  const backups = useQuery(() => ok(api.GET('/v1/instances/{id}/backups', pathOf(instance))), [instance.id], {
    refreshMs: 5000,
  });
  const action = useAction();
  const request = () =>
    action
      .run(() =>
        ok(
          api.POST('/v1/instances/{id}/backups', {
            params: { path: { id: instance.id }, header: { 'Idempotency-Key': idempotencyKey() } },
          }),
        ),
      )
      .then((done) => done && backups.reload());
  return (
    <section className="card" aria-labelledby="backups-title">
      <h2 id="backups-title">Backups</h2>
      {backups.data ? (
        backups.data.data.length === 0 ? (
          <p className="muted">No backup yet.</p>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Taken</th>
                  <th scope="col">Status</th>
                  <th scope="col">Size</th>
                  <th scope="col">Where</th>
                </tr>
              </thead>
              <tbody>
                {backups.data.data.slice(0, 10).map((backup) => (
                  <tr key={backup.id}>
                    <td>{formatDateTime(backup.completedAt ?? backup.createdAt)}</td>
                    <td>
                      <StatusBadge status={backup.status} />
                    </td>
                    <td>
                      {backup.sizeBytes === null ? '—' : `${(backup.sizeBytes / 1024 ** 2).toFixed(1)} MiB`}
                    </td>
                    <td className="wrap">
                      {backup.status === 'completed' && powers.operate ? (
                        <a href={`/v1/instances/${instance.id}/backups/${backup.id}/download`}>Download</a>
                      ) : (
                        <code>{backup.location ?? '—'}</code>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : (
        <Loading problem={backups.error} lines={2} />
      )}
      {powers.operate && instance.status === 'running' ? (
        <div className="actions">
          <button type="button" disabled={action.busy} onClick={request}>
            {action.busy ? 'Requesting…' : 'Back up now'}
          </button>
        </div>
      ) : null}
      <ProblemAlert problem={action.error} />
    </section>
  );
}

/** The add-on stack (Pulumi): planned or made resources, and the settings they gave. */
export function AddonPlan({ instance }: { instance: Instance }) {
  const stack = useQuery(
    () => ok(api.GET('/v1/instances/{id}/addon-stack', pathOf(instance))),
    [instance.id, instance.observedGeneration],
  );
  return (
    <section className="card" aria-labelledby="addon-plan-title">
      <h2 id="addon-plan-title">Add-on plan</h2>
      {stack.data ? (
        <>
          <p>
            Stack <code>{stack.data.stackName ?? '—'}</code>: <StatusBadge status={stack.data.state} />
          </p>
          {stack.data.resources.length > 0 ? (
            <ul className="plain">
              {stack.data.resources.map((resource) => (
                <li key={`${resource.type}/${resource.name}`}>
                  <code>{resource.type}</code> {resource.name}
                </li>
              ))}
            </ul>
          ) : null}
          {Object.keys(stack.data.outputs).length > 0 ? (
            <details>
              <summary>Settings</summary>
              <pre>{JSON.stringify(stack.data.outputs, null, 2)}</pre>
            </details>
          ) : null}
        </>
      ) : (
        <Loading problem={stack.error} lines={2} />
      )}
    </section>
  );
}

/** The Kubernetes objects as applied (secret values are markers), one disclosure each. */
export function Manifests({ instance }: { instance: Instance }) {
  const manifests = useQuery(
    () => ok(api.GET('/v1/instances/{id}/manifests', pathOf(instance))),
    [instance.id, instance.observedGeneration],
  );
  return (
    <section className="card" aria-labelledby="manifests-title">
      <h2 id="manifests-title">Rendered manifests</h2>
      {manifests.data ? (
        manifests.data.data.length === 0 ? (
          <p className="muted">Nothing rendered yet.</p>
        ) : (
          manifests.data.data.map((object) => (
            <details key={`${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`}>
              <summary>
                {object.kind} <code>{object.metadata.name}</code>
              </summary>
              <pre>{JSON.stringify(object, null, 2)}</pre>
            </details>
          ))
        )
      ) : (
        <Loading problem={manifests.error} lines={3} />
      )}
    </section>
  );
}
