import type { ReactNode } from 'react';
import type { Problem } from '../api.ts';

/** An API error as the API words it: its title, then its detail and field errors. */
export function ProblemAlert({ problem }: { problem: Problem | undefined }) {
  if (!problem) return null;
  return (
    <div className="problem" role="alert">
      <strong>{problem.title}</strong>
      {problem.detail ? <span> {problem.detail}</span> : null}
      {problem.errors.length > 0 ? (
        <ul>
          {problem.errors.map((error) => (
            <li key={`${error.field}:${error.message}`}>
              <code>{error.field}</code>: {error.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <p className="notice" role="status">
      {children}
    </p>
  );
}

/** A grey block the size of what will load, so nothing moves when it arrives. */
export function Skeleton({ width = '100%', height = '1em' }: { width?: string; height?: string }) {
  return <span className="skeleton" style={{ width, height }} aria-hidden="true" />;
}

/** Table rows of skeletons while a page of rows loads. */
export function SkeletonRows({ rows, columns }: { rows: number; columns: number }) {
  return (
    <>
      {Array.from({ length: rows }, (_, row) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: placeholders have no identity
        <tr key={row}>
          {Array.from({ length: columns }, (_, column) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: as above
            <td key={column}>
              <Skeleton />
            </td>
          ))}
        </tr>
      ))}
    </>
  );
}

/** A section that shows skeletons until its data is there, and the API's error if it failed. */
export function Loading({ problem, lines = 3 }: { problem?: Problem | undefined; lines?: number }) {
  if (problem) return <ProblemAlert problem={problem} />;
  return (
    <div className="skeleton-block" aria-busy="true">
      <span className="visually-hidden">Loading…</span>
      {Array.from({ length: lines }, (_, line) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: placeholders have no identity
        <Skeleton key={line} height="1.4em" />
      ))}
    </div>
  );
}
