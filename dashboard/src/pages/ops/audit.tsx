/**
 * The whole audit log, for staff: who did what to what, newest first, narrowed by action,
 * target type and organization (every filter the API offers). The filters live in the
 * address; a page keeps its size with skeleton rows while it loads. `AuditTable` also shows
 * one organization's log on its page.
 */
import { type FormEvent, useState } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { Link, setQuery, useLocation } from '../../router.tsx';
import { formatDateTime } from '../../ui/format.ts';
import { Pager, useCursorPages } from '../../ui/pager.tsx';
import { Table } from '../portal/common.tsx';
import {
  type Organization,
  OrganizationLink,
  OrganizationSelect,
  useOrganizations,
} from './organizations.tsx';

type Entry = Schemas['AuditEntry'];
export interface AuditPage {
  data: Entry[];
  nextCursor: string | null;
}

export const AUDIT_PAGE_SIZE = 25;

/** Where an entry's target can be looked at in the dashboard. */
function Target({ entry }: { entry: Entry }) {
  const path =
    entry.targetType === 'instance'
      ? `/instances/${entry.targetId}`
      : entry.targetType === 'organization'
        ? `/organizations/${entry.targetId}`
        : null;
  const id = <code>{entry.targetId}</code>;
  return (
    <>
      {entry.targetType} {path ? <Link to={path}>{id}</Link> : id}
    </>
  );
}

/**
 * A page of audit entries at a time. Give it a `key` that changes with its filters, so a
 * new filter starts again at page 1. With `organizations`, a column names each one.
 */
export function AuditTable({
  load,
  organizations,
}: {
  load: (cursor: string | undefined) => Promise<AuditPage>;
  organizations?: Map<string, Organization>;
}) {
  const pages = useCursorPages();
  const entries = useQuery(() => load(pages.cursor), [pages.cursor]);
  const columns = [
    'When',
    'Action',
    'Target',
    'Actor',
    ...(organizations ? ['Organization'] : []),
    'Details',
  ];
  return (
    <>
      <Table
        label="Audit entries"
        columns={columns}
        rows={entries.data?.data}
        problem={entries.error}
        skeleton={8}
        empty="No entries match."
        row={(entry) => (
          <tr key={entry.id}>
            <td>{formatDateTime(entry.createdAt)}</td>
            <td>
              <code>{entry.action}</code>
            </td>
            <td>
              <Target entry={entry} />
            </td>
            <td>
              <code>{entry.actor}</code>
            </td>
            {organizations ? (
              <td>
                {entry.organizationId ? (
                  <OrganizationLink id={entry.organizationId} byId={organizations} />
                ) : (
                  '—'
                )}
              </td>
            ) : null}
            <td className="wrap">
              <details>
                <summary>Data</summary>
                {entry.requestId ? <p className="hint">Request {entry.requestId}</p> : null}
                <pre>{JSON.stringify(entry.data, null, 2)}</pre>
              </details>
            </td>
          </tr>
        )}
      />
      <Pager pages={pages} nextCursor={entries.data?.nextCursor} />
    </>
  );
}

export default function AuditPage() {
  const { query } = useLocation();
  const applied = {
    action: query.get('action') ?? '',
    targetType: query.get('targetType') ?? '',
    organizationId: query.get('organizationId') ?? '',
  };
  const [form, setForm] = useState(applied);
  const organizations = useOrganizations();
  const apply = (event: FormEvent) => {
    event.preventDefault();
    setQuery('/audit', { ...form, action: form.action.trim(), targetType: form.targetType.trim() });
  };
  const clear = () => {
    setForm({ action: '', targetType: '', organizationId: '' });
    setQuery('/audit', {});
  };
  const field = (name: 'action' | 'targetType') => ({
    value: form[name],
    onChange: (event: { target: { value: string } }) => setForm({ ...form, [name]: event.target.value }),
  });
  return (
    <>
      <div className="page-head">
        <h1>Audit log</h1>
      </div>
      <search aria-label="Filter the audit log">
        <form className="filters" onSubmit={apply}>
          <label htmlFor="audit-action">
            Action
            <input id="audit-action" placeholder="order.create" pattern="[a-z_.]+" {...field('action')} />
          </label>
          <label htmlFor="audit-target">
            Target type
            <input id="audit-target" placeholder="instance" pattern="[a-z_]+" {...field('targetType')} />
          </label>
          <OrganizationSelect
            id="audit-organization"
            value={form.organizationId}
            onChange={(organizationId) => setForm({ ...form, organizationId })}
            list={organizations.list}
          />
          <button type="submit" className="primary">
            Apply filters
          </button>
          <button type="button" onClick={clear}>
            Clear
          </button>
        </form>
      </search>
      <AuditTable
        key={JSON.stringify(applied)}
        organizations={organizations.byId}
        load={(cursor) =>
          ok(
            api.GET('/v1/audit-log', {
              params: {
                query: {
                  action: applied.action || undefined,
                  targetType: applied.targetType || undefined,
                  organizationId: applied.organizationId || undefined,
                  limit: AUDIT_PAGE_SIZE,
                  cursor,
                },
              },
            }),
          )
        }
      />
    </>
  );
}
