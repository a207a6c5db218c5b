/**
 * What the customer pages share: the page head, a table that keeps its size while it loads,
 * and the gate for pages about the current organization.
 */
import { type ReactNode, useEffect, useState } from 'react';
import type { Problem } from '../../api.ts';
import { useOrganization } from '../../organization.tsx';
import { Link } from '../../router.tsx';
import type { Role, Session } from '../../session.tsx';
import { ProblemAlert, SkeletonRows } from '../../ui/feedback.tsx';

export type Membership = Session['memberships'][number];

export const ROLES = ['owner', 'admin', 'billing', 'viewer'] as const;

export function PageHead({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="page-head">
      <h1>{title}</h1>
      {children}
    </div>
  );
}

/** A page about the current organization; someone in none is sent to order a server. */
export function OrganizationPage({
  title,
  children,
}: {
  title: string;
  children: (membership: Membership) => ReactNode;
}) {
  const { current } = useOrganization();
  if (!current) {
    return (
      <>
        <PageHead title={title} />
        <p className="card">
          You are not in an organization yet. <Link to="/order">Order a server</Link> to start one, or ask an
          owner to invite you.
        </p>
      </>
    );
  }
  return <>{children(current)}</>;
}

/**
 * A table with a visually hidden caption: skeleton rows until `rows` arrive, `empty` when
 * there are none, the problem instead when loading failed. It scrolls sideways on narrow
 * screens, and the scrolling area takes focus so the keyboard can scroll it.
 */
export function Table<T>({
  label,
  columns,
  rows,
  row,
  empty,
  problem,
  skeleton = 3,
}: {
  label: string;
  columns: string[];
  rows: T[] | undefined;
  row: (item: T) => ReactNode;
  empty: ReactNode;
  problem?: Problem | undefined;
  skeleton?: number;
}) {
  if (problem && !rows) return <ProblemAlert problem={problem} />;
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard
    <section className="table-wrap" aria-label={label} tabIndex={0}>
      <table>
        <caption className="visually-hidden">{label}</caption>
        <thead>
          <tr>
            {columns.map((column) => (
              <th key={column} scope="col">
                {column}
              </th>
            ))}
          </tr>
        </thead>
        <tbody aria-busy={rows === undefined}>
          {rows === undefined ? (
            <SkeletonRows rows={skeleton} columns={columns.length} />
          ) : rows.length === 0 ? (
            <tr>
              <td colSpan={columns.length} className="wrap muted">
                {empty}
              </td>
            </tr>
          ) : (
            rows.map(row)
          )}
        </tbody>
      </table>
    </section>
  );
}

/** `value` once it has stayed the same for `ms` (live validation while typing). */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = window.setTimeout(() => setSettled(value), ms);
    return () => window.clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

export function RoleSelect({
  id,
  value,
  onChange,
  roles,
}: {
  id: string;
  value: Role;
  onChange: (role: Role) => void;
  roles: readonly Role[];
}) {
  return (
    <select id={id} value={value} onChange={(event) => onChange(event.target.value as Role)}>
      {roles.map((role) => (
        <option key={role} value={role}>
          {role}
        </option>
      ))}
    </select>
  );
}
