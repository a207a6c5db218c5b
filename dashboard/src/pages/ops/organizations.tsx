/**
 * Every organization, for staff: searched by name or slug as you type (the API lists them
 * all, so the search is done here), each linking to its own page. The search lives in the
 * address. Also the organizations' names for the other ops pages (a filter, a column).
 */
import { useMemo } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { useQuery } from '../../data.ts';
import { Link, setQuery, useLocation } from '../../router.tsx';
import { formatDate } from '../../ui/format.ts';
import { Table } from '../portal/common.tsx';

export type Organization = Schemas['Organization'];

/** All organizations (staff see every one), and a lookup by id. */
export function useOrganizations() {
  const query = useQuery(() => ok(api.GET('/v1/organizations')), []);
  const byId = useMemo(
    () => new Map((query.data?.data ?? []).map((organization) => [organization.id, organization])),
    [query.data],
  );
  return { list: query.data?.data, byId, error: query.error };
}

/** A link to an organization's page by its name (its id until the names are in). */
export function OrganizationLink({ id, byId }: { id: string; byId: Map<string, Organization> }) {
  return <Link to={`/organizations/${id}`}>{byId.get(id)?.name ?? id.slice(0, 8)}</Link>;
}

/** A labelled choice of organization for filters; '' is every organization. */
export function OrganizationSelect({
  id,
  value,
  onChange,
  list,
}: {
  id: string;
  value: string;
  onChange: (value: string) => void;
  list: Organization[] | undefined;
}) {
  return (
    <label htmlFor={id}>
      Organization
      <select id={id} value={value} onChange={(event) => onChange(event.target.value)}>
        <option value="">All organizations</option>
        {(list ?? []).map((organization) => (
          <option key={organization.id} value={organization.id}>
            {organization.name}
          </option>
        ))}
        {value && !list?.some((organization) => organization.id === value) ? (
          <option value={value}>{value}</option>
        ) : null}
      </select>
    </label>
  );
}

export default function OrganizationsPage() {
  const { query } = useLocation();
  const search = query.get('q') ?? '';
  const { list, error } = useOrganizations();
  const needle = search.trim().toLowerCase();
  const shown = list?.filter(
    (organization) => organization.name.toLowerCase().includes(needle) || organization.slug.includes(needle),
  );
  return (
    <>
      <div className="page-head">
        <h1>Organizations</h1>
        <span className="muted" aria-live="polite">
          {shown ? `${shown.length} of ${list?.length ?? 0}` : '…'}
        </span>
      </div>
      <search className="filters">
        <label htmlFor="organization-search">
          Search by name or slug
          <input
            id="organization-search"
            type="search"
            value={search}
            onChange={(event) => setQuery('/organizations', { q: event.target.value })}
            autoComplete="off"
          />
        </label>
      </search>
      <Table
        label="Organizations"
        columns={['Name', 'Slug', 'Created']}
        rows={shown}
        problem={error}
        skeleton={8}
        empty={search ? `No organization matches “${search}”.` : 'No organizations yet.'}
        row={(organization) => (
          <tr key={organization.id}>
            <td>
              <Link to={`/organizations/${organization.id}`}>{organization.name}</Link>
            </td>
            <td>
              <code>{organization.slug}</code>
            </td>
            <td>{formatDate(organization.createdAt)}</td>
          </tr>
        )}
      />
    </>
  );
}
