import { type FormEvent, useEffect, useRef, useState } from 'react';
import { api, idempotencyKey, ok, type Schemas } from '../../api.ts';
import { useAction, useQuery } from '../../data.ts';
import { useOrganization } from '../../organization.tsx';
import { Link } from '../../router.tsx';
import { mayManage, useSignedIn } from '../../session.tsx';
import { Loading, Notice, ProblemAlert } from '../../ui/feedback.tsx';
import { formatMoney, formatNumber } from '../../ui/format.ts';
import { type Membership, PageHead, useDebounced } from './common.tsx';
import { NewOrganization } from './new-organization.tsx';

type Plan = Schemas['Plan'];

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** What is wrong with a domain's syntax (the API checks the rest), or null. */
export function domainProblem(input: string): string | null {
  const domain = input.trim().toLowerCase().replace(/\.$/, '');
  if (!domain) return 'Enter the domain your server will have.';
  if (!/^[\x20-\x7e]*$/.test(input)) return 'Write the domain in ASCII (punycode for international names).';
  if (domain.length > 253) return 'A domain has at most 253 characters.';
  const labels = domain.split('.');
  if (labels.length < 2) return 'A domain has at least two parts, such as chess.example.org.';
  if (!labels.every((label) => LABEL.test(label)))
    return 'Use letters, digits and hyphens, with dots between the parts; no part starts or ends with a hyphen.';
  return null;
}

const money = (price: { amountMinor: number; currency: string }) =>
  formatMoney(price.amountMinor, price.currency);

function PlanCard({ plan, checked, onPick }: { plan: Plan; checked: boolean; onPick: () => void }) {
  const { limits } = plan;
  return (
    <label className="choice">
      <input type="radio" name="plan" value={plan.code} checked={checked} onChange={onPick} />{' '}
      <strong>{plan.name}</strong> <span className="muted">{money(plan.price)} a month</span>
      <ul className="hint">
        <li>{formatNumber(limits.activeUsers)} active users</li>
        <li>{formatNumber(limits.storageGb)} GB storage</li>
        <li>
          {formatNumber(limits.cpuMillicores / 1000)} CPU, {formatNumber(limits.memoryMib / 1024)} GiB memory
        </li>
        <li>
          {limits.webReplicas} web {limits.webReplicas === 1 ? 'process' : 'processes'}
        </li>
      </ul>
    </label>
  );
}

function OrderForm({ membership }: { membership: Membership }) {
  const session = useSignedIn();
  const plans = useQuery(() => ok(api.GET('/v1/plans')), []);
  const addons = useQuery(() => ok(api.GET('/v1/addons')), []);
  const action = useAction();
  const [picked, setPicked] = useState<string>();
  const [chosen, setChosen] = useState<string[]>([]);
  const [domain, setDomain] = useState('');
  const [placed, setPlaced] = useState<Schemas['Order']>();
  const [tried, setTried] = useState(false);
  const attempt = useRef<{ body: string; key: string }>(null);
  const settled = useDebounced(domain, 400);
  const [verdict, setVerdict] = useState<{ input: string; check: Schemas['DomainCheck'] }>();
  const allowed = mayManage(session, membership.organizationId);

  // Once the syntax is right, the API decides the rest as the order would (taken, reserved, not
  // this organization's). Only the answer for the latest settled input is kept.
  useEffect(() => {
    if (!allowed || !settled || domainProblem(settled)) return;
    let latest = true;
    api
      .GET('/v1/domains/check', {
        params: { query: { organizationId: membership.organizationId, domain: settled.trim() } },
      })
      .then(
        ({ data }) => {
          if (latest && data) setVerdict({ input: settled, check: data });
        },
        // A failed check only leaves the field unchecked: the order itself still decides.
        () => undefined,
      );
    return () => {
      latest = false;
    };
  }, [settled, allowed, membership.organizationId]);

  if (!plans.data || !addons.data) return <Loading problem={plans.error ?? addons.error} lines={8} />;
  const plan = plans.data.data.find((p) => p.code === picked) ?? plans.data.data[0];
  if (!plan) return <p className="card">No plans are on sale right now.</p>;
  const offered = addons.data.data.filter((addon) => plan.addons.includes(addon.code));
  const selected = offered.filter((addon) => chosen.includes(addon.code));
  const total = plan.price.amountMinor + selected.reduce((sum, addon) => sum + addon.price.amountMinor, 0);
  const checked = verdict?.input === domain ? verdict.check : undefined;
  const domainError =
    ((tried || settled) && domainProblem(tried ? domain : settled)) ||
    (checked?.available === false ? checked.reason : null);

  if (placed) {
    return (
      <section className="card" aria-labelledby="placed">
        <h2 id="placed">Order placed</h2>
        <Notice>
          Your order for {placed.domain} awaits approval by Woolly staff; provisioning starts once it is
          approved.
        </Notice>
        {placed.instanceId ? (
          <Link to={`/instances/${placed.instanceId}`}>Follow {placed.domain}</Link>
        ) : null}
      </section>
    );
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setTried(true);
    if (domainProblem(domain)) return;
    const body = {
      organizationId: membership.organizationId,
      plan: plan.code,
      domain: domain.trim(),
      addons: selected.map((addon) => addon.code),
    };
    const json = JSON.stringify(body);
    if (attempt.current?.body !== json) attempt.current = { body: json, key: idempotencyKey() };
    const key = attempt.current.key;
    await action.run(async () => {
      const order = await ok(
        api.POST('/v1/orders', { params: { header: { 'Idempotency-Key': key } }, body }),
      );
      if (order.checkout?.url) window.location.assign(order.checkout.url);
      else setPlaced(order);
    });
  };

  return (
    <form onSubmit={submit} noValidate>
      {allowed ? null : (
        <p className="warning">
          Only owners, admins and billing members of {membership.organizationName} can order.
        </p>
      )}
      {session.user.emailVerified ? null : (
        <p className="warning">Confirm your e-mail address (see the link we mailed you) before ordering.</p>
      )}
      <fieldset className="choices">
        <legend>Plan</legend>
        {plans.data.data.map((p) => (
          <PlanCard key={p.code} plan={p} checked={p.code === plan.code} onPick={() => setPicked(p.code)} />
        ))}
      </fieldset>
      <fieldset className="card stack">
        <legend>Add-ons</legend>
        {offered.length === 0 ? <p className="hint">The {plan.name} plan carries no add-ons.</p> : null}
        {offered.map((addon) => (
          <label key={addon.code}>
            <input
              type="checkbox"
              checked={chosen.includes(addon.code)}
              onChange={(e) =>
                setChosen((was) =>
                  e.target.checked ? [...was, addon.code] : was.filter((c) => c !== addon.code),
                )
              }
            />{' '}
            {addon.name} (+{money(addon.price)} a month) <span className="hint">{addon.description}</span>
          </label>
        ))}
      </fieldset>
      <div className="card stack">
        <label htmlFor="domain">Domain</label>
        <input
          id="domain"
          autoComplete="off"
          spellCheck={false}
          placeholder="chess.example.org"
          aria-invalid={domainError ? true : undefined}
          aria-describedby="domain-warning domain-error domain-status"
          value={domain}
          onChange={(e) => setDomain(e.target.value)}
        />
        <p id="domain-error" className="field-error" aria-live="polite">
          {domainError || ''}
        </p>
        <p id="domain-status" role="status" className="hint">
          {checked?.available && !domainError ? `✓ ${checked.domain} is available` : ''}
        </p>
        <p id="domain-warning" className="warning">
          <strong>The domain can never be changed.</strong> It becomes your server's name on the fediverse and
          is never reused.
        </p>
      </div>
      <p className="stat" aria-live="polite">
        Total: {formatMoney(total, plan.price.currency)} a month
      </p>
      <ProblemAlert problem={action.error} />
      <button type="submit" className="primary" disabled={action.busy || !allowed}>
        {action.busy ? 'Ordering…' : 'Order server'}
      </button>
    </form>
  );
}

export default function Order() {
  const { current } = useOrganization();
  return (
    <>
      <PageHead title="Order a server" />
      {current ? <OrderForm key={current.organizationId} membership={current} /> : <NewOrganization />}
    </>
  );
}
