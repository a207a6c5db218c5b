import { api, ok, type Schemas } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { formatDate, formatMoney } from '../../ui/format.ts';
import { Pager, useCursorPages } from '../../ui/pager.tsx';
import { StatusBadge } from '../../ui/status.tsx';
import { OrganizationPage, PageHead, Table } from './common.tsx';

type Invoice = Schemas['Invoice'];

const COLUMNS = ['Period', 'Status', 'Amount', 'Due', 'Paid', 'Lines'];

function InvoiceRow({ invoice }: { invoice: Invoice }) {
  const currency = invoice.total.currency;
  return (
    <tr>
      <td>
        {formatDate(invoice.period.start)} – {formatDate(invoice.period.end)}
      </td>
      <td>
        <StatusBadge status={invoice.status} />
      </td>
      <td>
        {formatMoney(invoice.total.amountMinor, currency)}
        {invoice.refundedMinor > 0 ? (
          <span className="hint"> ({formatMoney(invoice.refundedMinor, currency)} refunded)</span>
        ) : null}
      </td>
      <td>{formatDate(invoice.dueAt)}</td>
      <td>{formatDate(invoice.paidAt)}</td>
      <td className="wrap">
        <details>
          <summary>
            {invoice.lines.length} {invoice.lines.length === 1 ? 'line' : 'lines'}
          </summary>
          <ul>
            {invoice.lines.map((line, index) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: lines have no identity of their own
              <li key={index}>
                {line.description}: {formatMoney(line.amountMinor, currency)}
              </li>
            ))}
          </ul>
        </details>
      </td>
    </tr>
  );
}

function Invoices({ organizationId }: { organizationId: string }) {
  const pages = useCursorPages();
  const invoices = useQuery(
    () =>
      ok(
        api.GET('/v1/organizations/{id}/invoices', {
          params: { path: { id: organizationId }, query: { limit: 25, cursor: pages.cursor } },
        }),
      ),
    [organizationId, pages.cursor],
  );
  return (
    <>
      <Table
        label="Invoices"
        columns={COLUMNS}
        rows={invoices.data?.data}
        problem={invoices.error}
        skeleton={5}
        empty="No invoices yet: the first comes at the end of your server's first month."
        row={(invoice) => <InvoiceRow key={invoice.id} invoice={invoice} />}
      />
      {pages.page > 1 || invoices.data?.nextCursor ? (
        <Pager pages={pages} nextCursor={invoices.data?.nextCursor} />
      ) : null}
    </>
  );
}

export default function InvoicesPage() {
  return (
    <OrganizationPage title="Invoices">
      {(membership) => (
        <>
          <PageHead title="Invoices" />
          <p className="hint">Every server of {membership.organizationName}, newest first.</p>
          <Invoices organizationId={membership.organizationId} />
        </>
      )}
    </OrganizationPage>
  );
}
