/**
 * Small SVG charts: a column chart of daily values and a horizontal bar chart of amounts by
 * name. Each is a <figure> with a caption, and the numbers are also in a table for screen
 * readers, so the chart is never the only way to read them.
 */
import { useId } from 'react';
import { formatNumber } from './format.ts';

export interface Point {
  label: string;
  value: number;
}

function ChartTable({ points, unit }: { points: Point[]; unit: string }) {
  return (
    <table className="visually-hidden">
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Value ({unit})</th>
        </tr>
      </thead>
      <tbody>
        {points.map((point) => (
          <tr key={point.label}>
            <td>{point.label}</td>
            <td>{formatNumber(point.value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Columns of a series over time; `limit` draws a dashed line (a plan's included units). */
export function ColumnChart({
  title,
  points,
  unit,
  limit,
}: {
  title: string;
  points: Point[];
  unit: string;
  limit?: number | null;
}) {
  const captionId = useId();
  const width = 600;
  const height = 160;
  const top = Math.max(1, limit ?? 0, ...points.map((p) => p.value));
  const step = width / Math.max(1, points.length);
  const y = (value: number) => height - (value / top) * (height - 12);
  return (
    <figure className="chart">
      <figcaption id={captionId}>
        {title}{' '}
        <span className="muted">
          ({unit}, peak {formatNumber(Math.max(0, ...points.map((p) => p.value)))})
        </span>
      </figcaption>
      <svg
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-labelledby={captionId}
        preserveAspectRatio="none"
      >
        <title>{title}</title>
        {points.map((point, index) => (
          <rect
            key={point.label}
            x={index * step + 1}
            y={y(point.value)}
            width={Math.max(1, step - 2)}
            height={height - y(point.value)}
            className="bar"
          >
            <title>{`${point.label}: ${formatNumber(point.value)} ${unit}`}</title>
          </rect>
        ))}
        {limit ? <line x1={0} x2={width} y1={y(limit)} y2={y(limit)} className="limit" /> : null}
      </svg>
      <div className="chart-axis" aria-hidden="true">
        <span>{points[0]?.label}</span>
        <span>{points.at(-1)?.label}</span>
      </div>
      <ChartTable points={points} unit={unit} />
    </figure>
  );
}

/** Horizontal bars of amounts by name (revenue by service), each labelled with its value. */
export function BarList({
  title,
  points,
  format,
}: {
  title: string;
  points: Point[];
  format: (value: number) => string;
}) {
  const top = Math.max(1, ...points.map((p) => p.value));
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <ul className="bar-list">
        {points.map((point) => (
          <li key={point.label}>
            <span className="bar-label">{point.label}</span>
            <span className="bar-track" aria-hidden="true">
              <span className="bar-fill" style={{ width: `${(Math.max(0, point.value) / top) * 100}%` }} />
            </span>
            <span className="bar-value">{format(point.value)}</span>
          </li>
        ))}
      </ul>
    </figure>
  );
}
