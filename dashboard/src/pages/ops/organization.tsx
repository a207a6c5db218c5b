/**
 * One organization, for staff: its members and invitations, its custom domains, its orders
 * (each linking to its server: the server list has no organization filter), its invoices and
 * its audit log. Each section loads on its own and shows its own error.
 */
import type { ReactNode } from 'react';
import { api, ok } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { Link } from '../../router.tsx';
import { Skeleton } from '../../ui/feedback.tsx';
import { formatDate, formatDateTime, formatMoney, humanize } from '../../ui/format.ts';
import { Pager, useCursorPages } from '../../ui/pager.tsx';
import { StatusBadge } from '../../ui/status.tsx';
import { Table } from '../portal/common.tsx';
import { AUDIT_PAGE_SIZE, AuditTable } from './audit.tsx';
import { OrdersTable } from './orders.tsx';
import { useOrganizations } from './organizations.tsx';

function Section({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <section className="card" aria-labelledby={id} style={{ minWidth: 0 }}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

function Members({ id }: { id: string }) {
  const members = useQuery(
    () => ok(api.GET('/v1/organizations/{id}/members', { params: { path: { id } } })),
    [id],
  );
  const invitations = useQuery(
    () => ok(api.GET('/v1/organizations/{id}/invitations', { params: { path: { id } } })),
    [id],
  );
  return (
    <div className="grid two">
      <Section id="members" title="Members">
        <Table
          label="Members"
          columns={['Name', 'E-mail', 'Role', 'Joined']}
          rows={members.data?.data}
          problem={members.error}
          empty="No members."
          row={(member) => (
            <tr key={member.userId}>
              <td>{member.name ?? '—'}</td>
              <td>{member.email}</td>
              <td>{member.role}</td>
              <td>{formatDate(member.joinedAt)}</td>
            </tr>
          )}
        />
      </Section>
      <Section id="invitations" title="Invitations">
        <Table
          label="Invitations"
          columns={['E-mail', 'Role', 'Status', 'Invited by', 'Expires']}
          rows={invitations.data?.data}
          problem={invitations.error}
          empty="No invitations."
          row={(invitation) => (
            <tr key={invitation.id}>
              <td>{invitation.email}</td>
              <td>{invitation.role}</td>
              <td>
                <StatusBadge status={invitation.status} />
              </td>
              <td>{invitation.invitedBy ?? '—'}</td>
              <td>{formatDate(invitation.expiresAt)}</td>
            </tr>
          )}
        />
      </Section>
    </div>
  );
}

function Domains({ id }: { id: string }) {
  const domains = useQuery(
    () => ok(api.GET('/v1/organizations/{id}/domains', { params: { path: { id } } })),
    [id],
  );
  return (
    <Table
      label="Custom domains"
      columns={['Hostname', 'Verified', 'Last check', 'Claimed']}
      rows={domains.data?.data}
      problem={domains.error}
      skeleton={2}
      empty="No custom domains claimed."
      row={(domain) => (
        <tr key={domain.id}>
          <td>{domain.hostname}</td>
          <td>{domain.verifiedAt ? formatDateTime(domain.verifiedAt) : <StatusBadge status="pending" />}</td>
          <td className="wrap">
            {domain.lastCheckedAt ? formatDateTime(domain.lastCheckedAt) : '—'}
            {domain.lastCheckError ? <span className="hint"> {domain.lastCheckError}</span> : null}
          </td>
          <td>{formatDate(domain.createdAt)}</td>
        </tr>
      )}
    />
  );
}

function Invoices({ id }: { id: string }) {
  const pages = useCursorPages();
  const invoices = useQuery(
    () =>
      ok(
        api.GET('/v1/organizations/{id}/invoices', {
          params: { path: { id }, query: { limit: 10, cursor: pages.cursor } },
        }),
      ),
    [id, pages.cursor],
  );
  return (
    <>
      <Table
        label="Invoices"
        columns={['Period', 'Server', 'Status', 'Total', 'Due', 'Paid']}
        rows={invoices.data?.data}
        problem={invoices.error}
        empty="No invoices yet."
        row={(invoice) => (
          <tr key={invoice.id}>
            <td>
              {formatDate(invoice.period.start)} – {formatDate(invoice.period.end)}
            </td>
            <td>
              {invoice.instanceId ? (
                <Link to={`/instances/${invoice.instanceId}`}>
                  <code>{invoice.instanceId.slice(0, 8)}</code>
                </Link>
              ) : (
                '—'
              )}
            </td>
            <td>
              <StatusBadge status={invoice.status} />
            </td>
            <td>
              {formatMoney(invoice.total.amountMinor, invoice.total.currency)}{' '}
              <span className="hint">({humanize(invoice.provider)})</span>
            </td>
            <td>{formatDate(invoice.dueAt)}</td>
            <td>{formatDate(invoice.paidAt)}</td>
          </tr>
        )}
      />
      <Pager pages={pages} nextCursor={invoices.data?.nextCursor} />
    </>
  );
}

export default function OrganizationPage({ params }: { params: Record<string, string> }) {
  const id = params.id ?? '';
  const organizations = useOrganizations();
  const organization = organizations.byId.get(id);
  const unknown = organizations.list !== undefined && !organization;
  return (
    <>
      <div className="page-head">
        <h1>{organization?.name ?? (unknown ? 'Organization' : <Skeleton width="12rem" />)}</h1>
        <Link to="/organizations">All organizations</Link>
      </div>
      <p className="muted">
        {organization ? (
          <>
            <code>{organization.slug}</code> · since {formatDate(organization.createdAt)}
          </>
        ) : unknown ? (
          'No organization has this id.'
        ) : (
          <Skeleton width="16rem" />
        )}
      </p>
      <Members id={id} />
      <Section id="domains" title="Custom domains">
        <Domains id={id} />
      </Section>
      <Section id="orders" title="Orders and servers">
        <OrdersTable key={id} organizationId={id} />
      </Section>
      <Section id="invoices" title="Invoices">
        <Invoices id={id} />
      </Section>
      <Section id="audit" title="Audit log">
        <AuditTable
          key={id}
          load={(cursor) =>
            ok(
              api.GET('/v1/organizations/{id}/audit-log', {
                params: { path: { id }, query: { limit: AUDIT_PAGE_SIZE, cursor } },
              }),
            )
          }
        />
      </Section>
    </>
  );
}
