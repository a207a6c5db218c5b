/**
 * Billing for staff, over a range of days (this month unless the address says otherwise): MRR
 * now by currency, revenue paid in the range by service, churn, every past-due server, and
 * the fleet's metered usage a day at a time.
 */
import { type FormEvent, useState } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { Link, setQuery, useLocation } from '../../router.tsx';
import { BarList, ColumnChart } from '../../ui/charts.tsx';
import { Loading } from '../../ui/feedback.tsx';
import { formatDate, formatMoney, formatNumber, humanize, meterTitle } from '../../ui/format.ts';
import { Table } from '../portal/common.tsx';

type Report = Schemas['BillingReport'];

/** The first and last day of this month (UTC), as the API's defaults. */
function thisMonth(): { from: string; to: string } {
  const now = new Date();
  const day = (month: number, date: number) =>
    new Date(Date.UTC(now.getUTCFullYear(), month, date)).toISOString().slice(0, 10);
  return { from: day(now.getUTCMonth(), 1), to: day(now.getUTCMonth() + 1, 0) };
}

function Mrr({ report }: { report: Report }) {
  if (report.mrr.length === 0) return <p className="card muted">No recurring revenue yet.</p>;
  return (
    <div className="grid">
      {report.mrr.map((mrr) => (
        <section key={mrr.currency} className="card" aria-label={`MRR in ${mrr.currency.toUpperCase()}`}>
          <h2>MRR · {mrr.currency.toUpperCase()}</h2>
          <p className="stat">{formatMoney(mrr.totalMinor, mrr.currency)}</p>
          <p className="hint">
            {formatMoney(mrr.subscriptionsMinor, mrr.currency)} subscriptions ·{' '}
            {formatMoney(mrr.sponsorshipsMinor, mrr.currency)} sponsorships
          </p>
        </section>
      ))}
    </div>
  );
}

function Revenue({ report }: { report: Report }) {
  const { churn } = report;
  return (
    <div className="grid two">
      <section className="card" aria-labelledby="revenue">
        <h2 id="revenue">Revenue paid in the range</h2>
        {report.revenue.length === 0 ? <p className="muted">Nothing was paid in this range.</p> : null}
        {report.revenue.map((revenue) => {
          const money = (minor: number) => formatMoney(minor, revenue.currency);
          return (
            <div key={revenue.currency}>
              <BarList
                title={`By service, ${revenue.currency.toUpperCase()}: ${money(revenue.totalMinor)} in all`}
                points={Object.entries(revenue.byService).map(([service, value]) => ({
                  label: humanize(service),
                  value,
                }))}
                format={money}
              />
              {revenue.refundedMinor > 0 ? (
                <p className="hint">{money(revenue.refundedMinor)} refunded</p>
              ) : null}
            </div>
          );
        })}
      </section>
      <section className="card" aria-labelledby="churn">
        <h2 id="churn">Churn</h2>
        <p className="stat">{churn.rate === null ? '—' : `${(churn.rate * 100).toFixed(1)} %`}</p>
        <p className="hint">
          {formatNumber(churn.cancelled)} of {formatNumber(churn.activeAtStart)} subscriptions active at the
          start ended in the range.
          {churn.lostMrr.length > 0
            ? ` Lost MRR: ${churn.lostMrr.map((m) => formatMoney(m.amountMinor, m.currency)).join(', ')}.`
            : null}
        </p>
      </section>
    </div>
  );
}

function PastDue({ report }: { report: Report }) {
  return (
    <Table
      label="Past-due servers"
      columns={['Server', 'Organization', 'Past due since', 'Grace ends', 'Suspended', 'Due']}
      rows={report.pastDue}
      empty="No server is past due."
      row={(due) => (
        <tr key={due.instanceId}>
          <td>
            <Link to={`/instances/${due.instanceId}`}>{due.domain}</Link>
          </td>
          <td>
            <Link to={`/organizations/${due.organization.id}`}>{due.organization.name}</Link>
          </td>
          <td>{formatDate(due.pastDueSince)}</td>
          <td>{formatDate(due.graceEndsAt)}</td>
          <td>{due.suspended ? 'Yes' : 'No'}</td>
          <td>{formatMoney(due.amountDue.amountMinor, due.amountDue.currency)}</td>
        </tr>
      )}
    />
  );
}

function Usage({ from, to }: { from: string; to: string }) {
  const usage = useQuery(
    () => ok(api.GET('/v1/billing/usage', { params: { query: { from, to } } })),
    [from, to],
  );
  if (!usage.data) return <Loading problem={usage.error} lines={8} />;
  return (
    <div className="grid two">
      {usage.data.meters.map((meter) => (
        <ColumnChart
          key={meter.meter}
          title={meterTitle(meter.meter)}
          unit={meter.unit}
          points={meter.days.map((day) => ({ label: formatDate(day.date), value: day.quantity }))}
        />
      ))}
    </div>
  );
}

export default function BillingPage() {
  const { query } = useLocation();
  const month = thisMonth();
  const range = { from: query.get('from') ?? month.from, to: query.get('to') ?? month.to };
  const [form, setForm] = useState(range);
  const report = useQuery(
    () => ok(api.GET('/v1/billing/report', { params: { query: { from: range.from, to: range.to } } })),
    [range.from, range.to],
  );
  const apply = (event: FormEvent) => {
    event.preventDefault();
    setQuery('/billing', form);
  };
  return (
    <>
      <div className="page-head">
        <h1>Billing</h1>
      </div>
      <form className="filters" onSubmit={apply} aria-label="Range of days">
        <label htmlFor="billing-from">
          From
          <input
            id="billing-from"
            type="date"
            required
            value={form.from}
            onChange={(e) => setForm({ ...form, from: e.target.value })}
          />
        </label>
        <label htmlFor="billing-to">
          To (included)
          <input
            id="billing-to"
            type="date"
            required
            min={form.from}
            value={form.to}
            onChange={(e) => setForm({ ...form, to: e.target.value })}
          />
        </label>
        <button type="submit" className="primary">
          Show
        </button>
      </form>
      {report.data ? (
        <>
          <Mrr report={report.data} />
          <Revenue report={report.data} />
          <section aria-labelledby="past-due" className="card">
            <h2 id="past-due">Past due</h2>
            <PastDue report={report.data} />
          </section>
        </>
      ) : (
        <Loading problem={report.error} lines={12} />
      )}
      <section aria-labelledby="usage" className="card">
        <h2 id="usage">Metered usage, whole fleet</h2>
        <Usage from={range.from} to={range.to} />
      </section>
    </>
  );
}
