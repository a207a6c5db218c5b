/**
 * Orders, for staff: newest first, by status and organization (filters in the address), a
 * page at a time. An unpaid order can be marked paid (billing provider `none`: payment made
 * outside Woolly) or cancelled, which frees its domain. `OrdersTable` is also one
 * organization's list of orders on its page.
 */
import { useState } from 'react';
import { api, idempotencyKey, ok, type Schemas } from '../../api.ts';
import { useAction, useQuery } from '../../data.ts';
import { Link, setQuery, useLocation } from '../../router.tsx';
import { ConfirmDialog } from '../../ui/dialog.tsx';
import { Notice, ProblemAlert } from '../../ui/feedback.tsx';
import { formatDateTime, formatMoney, humanize } from '../../ui/format.ts';
import { Pager, useCursorPages } from '../../ui/pager.tsx';
import { StatusBadge } from '../../ui/status.tsx';
import { Table } from '../portal/common.tsx';
import {
  type Organization,
  OrganizationLink,
  OrganizationSelect,
  useOrganizations,
} from './organizations.tsx';

type Order = Schemas['Order'];
const STATUSES: Schemas['OrderStatus'][] = ['pending_payment', 'paid', 'cancelled'];
const PAGE_SIZE = 25;

function OrderActions({ order, onDone }: { order: Order; onDone: (message: string) => void }) {
  const approve = useAction();
  const cancel = useAction();
  const [confirming, setConfirming] = useState(false);
  if (order.status !== 'pending_payment') return null;
  const params = { path: { id: order.id }, header: { 'Idempotency-Key': idempotencyKey() } };
  const busy = approve.busy || cancel.busy;
  return (
    <>
      <div className="actions in-row">
        <button
          type="button"
          className="primary"
          disabled={busy}
          onClick={async () => {
            if (await approve.run(() => ok(api.POST('/v1/orders/{id}/approve-payment', { params }))))
              onDone(`Payment approved for ${order.domain}; provisioning is queued.`);
          }}
        >
          {approve.busy ? 'Approving…' : 'Approve payment'}
          <span className="visually-hidden"> for {order.domain}</span>
        </button>
        <button type="button" className="danger" disabled={busy} onClick={() => setConfirming(true)}>
          {cancel.busy ? 'Cancelling…' : 'Cancel order'}
          <span className="visually-hidden"> for {order.domain}</span>
        </button>
      </div>
      <ProblemAlert problem={approve.error ?? cancel.error} />
      {confirming ? (
        <ConfirmDialog
          title={`Cancel the order for ${order.domain}?`}
          typed={order.domain}
          confirmLabel="Cancel order"
          danger
          onClose={() => setConfirming(false)}
          onConfirm={async () => {
            setConfirming(false);
            if (await cancel.run(() => ok(api.POST('/v1/orders/{id}/cancel', { params }))))
              onDone(`The order for ${order.domain} is cancelled; the domain is free again.`);
          }}
        >
          <p>No server ever ran for it: its record is removed and the domain can be ordered again.</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}

/**
 * A page of orders at a time, with their actions. Give it a `key` that changes with its
 * filters, so a new filter starts again at page 1. With `organizations`, a column names each.
 */
export function OrdersTable({
  status,
  organizationId,
  organizations,
}: {
  status?: Schemas['OrderStatus'] | undefined;
  organizationId?: string | undefined;
  organizations?: Map<string, Organization>;
}) {
  const pages = useCursorPages();
  const [message, setMessage] = useState<string>();
  const orders = useQuery(
    () =>
      ok(
        api.GET('/v1/orders', {
          params: { query: { status, organizationId, limit: PAGE_SIZE, cursor: pages.cursor } },
        }),
      ),
    [pages.cursor],
  );
  const done = (text: string) => {
    setMessage(text);
    orders.reload();
  };
  const columns = ['Server', ...(organizations ? ['Organization'] : []), 'Status', 'Monthly', 'Add-ons'];
  return (
    <>
      {message ? <Notice>{message}</Notice> : null}
      <Table
        label="Orders"
        columns={[...columns, 'Ordered', 'Paid', 'Actions']}
        rows={orders.data?.data}
        problem={orders.error}
        skeleton={6}
        empty="No orders match."
        row={(order) => (
          <tr key={order.id}>
            <td>
              {order.instanceId ? (
                <Link to={`/instances/${order.instanceId}`}>{order.domain}</Link>
              ) : (
                <>
                  {order.domain} <span className="hint">(no server)</span>
                </>
              )}
            </td>
            {organizations ? (
              <td>
                <OrganizationLink id={order.organizationId} byId={organizations} />
              </td>
            ) : null}
            <td>
              <StatusBadge status={order.status} />
            </td>
            <td>{formatMoney(order.total.amountMinor, order.total.currency)}</td>
            <td className="wrap">{order.addons.map(humanize).join(', ') || '—'}</td>
            <td>{formatDateTime(order.createdAt)}</td>
            <td>{formatDateTime(order.paidAt)}</td>
            <td className="wrap">
              <OrderActions order={order} onDone={done} />
            </td>
          </tr>
        )}
      />
      <Pager pages={pages} nextCursor={orders.data?.nextCursor} />
    </>
  );
}

export default function OrdersPage() {
  const { query } = useLocation();
  const status = STATUSES.find((s) => s === query.get('status'));
  const organizationId = query.get('organizationId') ?? '';
  const organizations = useOrganizations();
  return (
    <>
      <div className="page-head">
        <h1>Orders</h1>
      </div>
      <search className="filters" aria-label="Filter orders">
        <label htmlFor="order-status">
          Status
          <select
            id="order-status"
            value={status ?? ''}
            onChange={(event) => setQuery('/orders', { status: event.target.value, organizationId })}
          >
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {humanize(s)}
              </option>
            ))}
          </select>
        </label>
        <OrganizationSelect
          id="order-organization"
          value={organizationId}
          onChange={(value) => setQuery('/orders', { status, organizationId: value })}
          list={organizations.list}
        />
      </search>
      <OrdersTable
        key={`${status}:${organizationId}`}
        status={status}
        organizationId={organizationId || undefined}
        organizations={organizations.byId}
      />
    </>
  );
}
