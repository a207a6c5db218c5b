import type { Request, Response } from 'express';
import { AppError } from '../../core/errors.ts';
import type { Actor, ApiDeps } from '../context.ts';
import { isStaff } from '../policy.ts';

/** How often the stream looks for new events; any API replica sees every write this way. */
const POLL_MS = 1000;
const KEEPALIVE_MS = 15_000;
const BATCH = 200;

interface EventRow {
  id: string;
  type: string;
  message: string;
  createdAt: Date;
}

const EVENTS_AFTER = `
  select e.id::text, e.type, e.message, e."createdAt" from "Event" e
   where e."instanceId" = $1 and e.id > $2::bigint order by e.id limit ${BATCH}`;

async function assertVisible(deps: ApiDeps, actor: Actor, instanceId: string): Promise<void> {
  const { rowCount } = await deps.pool.query({
    name: 'instance-visible',
    text: `select 1 from "Instance" i where i.id = $1 and ($2::uuid is null or exists (
             select 1 from "Membership" m where m."organizationId" = i."organizationId" and m."userId" = $2::uuid))`,
    values: [instanceId, isStaff(actor) ? null : actor.userId],
  });
  if (rowCount !== 1) throw new AppError('not_found', `No instance ${instanceId}.`);
}

/**
 * Streams an instance's events as Server-Sent Events: the backlog after the last id the
 * client saw, then new events as they are written, until the client goes away.
 */
export async function streamInstanceEvents(
  deps: ApiDeps,
  actor: Actor,
  instanceId: string,
  after: string,
  req: Request,
  res: Response,
): Promise<void> {
  await assertVisible(deps, actor, instanceId);
  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    // Tells nginx-style proxies not to buffer the stream.
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  let lastId = after;
  let closed = false;
  let lastWrite = Date.now();
  req.on('close', () => {
    closed = true;
  });
  try {
    while (!closed) {
      const { rows } = await deps.pool.query<EventRow>({
        name: 'instance-events-after',
        text: EVENTS_AFTER,
        values: [instanceId, lastId],
      });
      for (const row of rows) {
        const data = JSON.stringify({
          id: row.id,
          type: row.type,
          message: row.message,
          createdAt: row.createdAt.toISOString(),
        });
        res.write(`id: ${row.id}\nevent: ${row.type}\ndata: ${data}\n\n`);
        lastId = row.id;
        lastWrite = Date.now();
      }
      if (rows.length === BATCH) continue;
      if (Date.now() - lastWrite >= KEEPALIVE_MS) {
        res.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } catch (error) {
    // The stream is already open: a failure can only end it; the client reconnects with
    // Last-Event-ID and loses nothing.
    if (!closed) res.locals.log?.warn('event stream ended by an error', { error, instanceId });
  }
  res.end();
}
