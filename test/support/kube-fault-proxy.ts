/**
 * A fault-injecting proxy for tests: plain HTTP on loopback in front of the tests' real
 * kube-apiserver (test/support/kube-server.ts). Every request is forwarded unchanged, bodies
 * streamed both ways, unless a rule chosen by the test answers it with an error Status, delays
 * it, never answers it, drops the connection, or holds it (or its answer) for the test to let go.
 * Connection upgrades (exec, port-forward) are not proxied; nothing in Woolly uses them.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { KubeApiServer } from './kube-server.ts';

/** What a rule does instead of (or around) forwarding a request. */
export type FaultAction =
  /** Answers a Kubernetes Status JSON with this HTTP status; the request is not forwarded. */
  | { status: number; reason?: string; message?: string; retryAfterSeconds?: number }
  /** Forwards the request after a delay. */
  | { delayMs: number }
  /** Never answers (until `clear` or `release` destroys the connection). */
  | { hang: true }
  /** Destroys the connection without an answer. */
  | { reset: true }
  /**
   * Calls `hold` with the request paused: `forward()` sends it on, `drop()` destroys the
   * connection. With `afterForward: true` the request IS forwarded and its *answer* is held
   * instead, so the server has done the work but the client has not heard back.
   */
  | { hold: (forward: () => void, drop: () => void) => void; afterForward?: boolean };

export interface FaultRule {
  /** Which requests: method and/or a regex on the path+query; omitted = any. */
  method?: string;
  path?: RegExp;
  /** How many matching requests it applies to (default 1); Infinity for all. */
  times?: number;
  action: FaultAction;
}

/** One request the proxy saw. */
export interface SeenRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  /**
   * The status answered (the API server's or an injected one); `hang` or `reset` for those
   * rules; `held` while a hold rule keeps it (or its answer) and after it was dropped, the
   * status once it is let go and answered; `pending` until then.
   */
  outcome: number | string;
  /** `Date.now()` when the request arrived: retry spacing is measured here, not in the client. */
  at: number;
}

export interface KubeFaultProxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** A kubeconfig pointing at the proxy with the given bearer token. */
  kubeconfigYaml: string;
  /** Adds a rule; the first rule (in order added) that matches a request and has uses left takes it. */
  inject(rule: FaultRule): void;
  /** Drops all rules; held and hung requests are destroyed. */
  clear(): void;
  /** Every request seen, in order of arrival. */
  readonly seen: SeenRequest[];
  /** Stops the proxy, destroying every open connection. */
  release(): Promise<void>;
}

/** Connection-level headers, which belong to one hop and are not passed on. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

/**
 * A kubeconfig for the proxy. client-node only speaks plain HTTP to a cluster marked
 * insecure-skip-tls-verify; there is no TLS to verify on this loopback hop.
 */
function proxyKubeconfig(url: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: woolly-fault-proxy',
    '  cluster:',
    `    server: ${url}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: woolly-test-user',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: woolly-fault-proxy',
    '  context:',
    '    cluster: woolly-fault-proxy',
    '    user: woolly-test-user',
    'current-context: woolly-fault-proxy',
    '',
  ].join('\n');
}

/** The Status a real API server answers an error with. */
function statusBody(action: {
  status: number;
  reason?: string;
  message?: string;
  retryAfterSeconds?: number;
}) {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: action.message ?? `injected ${action.status}`,
    reason: action.reason ?? '',
    ...(action.retryAfterSeconds === undefined
      ? {}
      : { details: { retryAfterSeconds: action.retryAfterSeconds } }),
    code: action.status,
  });
}

/**
 * Starts the proxy on a free loopback port. Its kubeconfig carries `server.adminToken`, or
 * `options.token` (e.g. a restricted user's from `server.tokens`); the proxy passes the
 * client's Authorization header through as it came.
 */
export async function startKubeFaultProxy(
  server: KubeApiServer,
  options: { token?: string } = {},
): Promise<KubeFaultProxy> {
  const upstream = new URL(server.url);
  const agent = new https.Agent({ ca: server.caCert, keepAlive: true });
  const rules: { rule: FaultRule; left: number }[] = [];
  const seen: SeenRequest[] = [];
  /** Connections a hang or hold keeps open, by their destroy function, for `clear`. */
  const stalled = new Set<() => void>();

  const takeRule = (request: http.IncomingMessage): FaultRule | undefined => {
    const path = request.url ?? '/';
    const match = rules.find(({ rule, left }) => {
      if (left <= 0) return false;
      if (rule.method !== undefined && rule.method.toUpperCase() !== request.method) return false;
      if (rule.path === undefined) return true;
      rule.path.lastIndex = 0; // a /g or /y regex keeps state between tests
      return rule.path.test(path);
    });
    if (match) match.left -= 1;
    return match?.rule;
  };

  const proxy = http.createServer((request, response) => {
    const entry: SeenRequest = {
      method: request.method ?? 'GET',
      path: request.url ?? '/',
      outcome: 'pending',
      at: Date.now(),
    };
    seen.push(entry);
    let gone = false;
    response.on('close', () => {
      gone = true;
    });
    const destroy = () => request.socket.destroy();
    /** Keeps the connection for `clear` to destroy; the returned function lets go of it. */
    const stall = () => {
      stalled.add(destroy);
      return () => stalled.delete(destroy);
    };

    /** Passes the API server's answer back to the client. */
    const relay = (answer: http.IncomingMessage) => {
      entry.outcome = answer.statusCode ?? 0;
      response.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
      answer.pipe(response);
    };

    /** Sends the request on to the API server; `onAnswer` gets its answer, paused. */
    const forward = (onAnswer: (answer: http.IncomingMessage) => void) => {
      // The client gave up while the request was delayed or held: nothing to send on.
      if (gone) return;
      const outgoing = https.request(
        {
          hostname: upstream.hostname,
          port: upstream.port,
          path: request.url,
          method: request.method,
          headers: endToEnd(request.headers),
          agent,
        },
        (answer) => {
          answer.pause();
          // Cut off mid-answer (or while held): the client's answer is cut off too.
          answer.on('error', () => response.destroy());
          onAnswer(answer);
        },
      );
      outgoing.on('error', (error) => {
        // The API server went away mid-request: say so as a gateway would, if anyone listens.
        if (gone || response.headersSent) {
          response.destroy();
          return;
        }
        entry.outcome = 502;
        response.writeHead(502, { 'content-type': 'application/json' });
        response.end(statusBody({ status: 502, reason: 'BadGateway', message: error.message }));
      });
      // The client gave up (or its connection was dropped): stop the upstream request too.
      response.on('close', () => {
        if (!response.writableFinished) outgoing.destroy();
      });
      request.pipe(outgoing);
    };

    const action = takeRule(request)?.action;
    if (!action) {
      forward(relay);
    } else if ('status' in action) {
      request.resume();
      entry.outcome = action.status;
      response.writeHead(action.status, {
        'content-type': 'application/json',
        ...(action.retryAfterSeconds === undefined
          ? {}
          : { 'retry-after': String(action.retryAfterSeconds) }),
      });
      response.end(statusBody(action));
    } else if ('delayMs' in action) {
      request.pause();
      setTimeout(() => forward(relay), action.delayMs);
    } else if ('hang' in action) {
      entry.outcome = 'hang';
      stall();
    } else if ('reset' in action) {
      entry.outcome = 'reset';
      destroy();
    } else if (action.afterForward) {
      forward((answer) => {
        entry.outcome = 'held';
        const unstall = stall();
        action.hold(
          () => {
            unstall();
            relay(answer);
          },
          () => {
            answer.destroy();
            destroy();
          },
        );
      });
    } else {
      entry.outcome = 'held';
      request.pause();
      const unstall = stall();
      action.hold(() => {
        unstall();
        forward(relay);
      }, destroy);
    }
  });

  const sockets = new Set<Socket>();
  proxy.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    proxy.once('error', reject);
    proxy.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

  const clear = () => {
    rules.length = 0;
    for (const destroy of [...stalled]) destroy();
    stalled.clear();
  };

  return {
    url,
    kubeconfigYaml: proxyKubeconfig(url, options.token ?? server.adminToken),
    inject(rule) {
      rules.push({ rule, left: rule.times ?? 1 });
    },
    clear,
    seen,
    async release() {
      clear();
      const closed = new Promise<void>((resolve) => proxy.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
      agent.destroy();
    },
  };
}
