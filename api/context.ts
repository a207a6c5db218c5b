import type { Config } from '../core/config.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';

/** What the API's routes and services are built from. */
export interface ApiDeps {
  db: Db;
  config: Config;
  log: Logger;
}

/** Token scopes; `admin` implies every other. */
export const SCOPES = ['instances:read', 'instances:write', 'billing:read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** Who is calling, as established by authentication. */
export interface Actor {
  userId: string;
  email: string;
  staffRole: 'ops' | 'admin' | null;
  scopes: readonly Scope[];
  tokenId: string;
}

/** Per-request facts a service needs: the caller and the ids to log and audit with. */
export interface RequestContext {
  actor: Actor;
  requestId: string;
  log: Logger;
}
