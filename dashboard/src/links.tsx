/**
 * The links the API mails: `/dashboard/#verify-email=<token>` confirms an address, and
 * `/dashboard/#accept-invitation=<token>` joins an organization once the invited person is
 * signed in. The token leaves the address bar at once; an invitation's waits in this tab's
 * sessionStorage through sign-in. Outcomes live outside the component, so they survive the
 * redirects between the sign-in page and the signed-in frame.
 */
import { useEffect, useSyncExternalStore } from 'react';
import { api, asProblem, idempotencyKey, ok, type Problem } from './api.ts';
import { useSession } from './session.tsx';
import { Notice, ProblemAlert } from './ui/feedback.tsx';

const INVITATION = 'woolly.invitation';

type Outcome = { notice: string } | { problem: Problem };

let state: { outcome: Outcome | null; verify: string | null; version: number } = {
  outcome: null,
  verify: null,
  version: 0,
};
const listeners = new Set<() => void>();
const started = new Set<string>();

function update(change: Partial<typeof state>): void {
  state = { ...state, ...change, version: state.version + 1 };
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Takes a mailed token out of the address bar (at start, and when only the hash changes). */
function readAddress(): void {
  const found = /^#(verify-email|accept-invitation)=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  if (!found?.[2]) return;
  window.history.replaceState(window.history.state, '', window.location.pathname + window.location.search);
  if (found[1] === 'accept-invitation') {
    window.sessionStorage.setItem(INVITATION, found[2]);
    update({});
  } else {
    update({ verify: found[2] });
  }
}

readAddress();

export function MailedLinks() {
  const { session, refresh } = useSession();
  const { outcome, verify, version } = useSyncExternalStore(subscribe, () => state);
  const invitation = window.sessionStorage.getItem(INVITATION);

  useEffect(() => {
    window.addEventListener('hashchange', readAddress);
    return () => window.removeEventListener('hashchange', readAddress);
  }, []);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `version` announces a new link
  useEffect(() => {
    if (!verify || session === undefined || started.has(verify)) return;
    started.add(verify);
    const signedIn = session !== null;
    ok(api.POST('/v1/signup/verify', { body: { token: verify } })).then(
      () => {
        update({
          verify: null,
          outcome: {
            notice: signedIn
              ? 'Your e-mail address is confirmed. You can order a server now.'
              : 'Your e-mail address is confirmed. Sign in to order a server.',
          },
        });
        if (signedIn) void refresh();
      },
      (error: unknown) => update({ verify: null, outcome: { problem: asProblem(error) } }),
    );
  }, [verify, session, refresh, version]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `version` announces a new link
  useEffect(() => {
    if (!session || !invitation) return;
    const attempt = `${session.user.id}:${invitation}`;
    if (started.has(attempt)) return;
    started.add(attempt);
    ok(
      api.POST('/v1/invitations/accept', {
        params: { header: { 'Idempotency-Key': idempotencyKey() } },
        body: { token: invitation },
      }),
    ).then(
      (member) => {
        window.sessionStorage.removeItem(INVITATION);
        update({ outcome: { notice: `Invitation accepted: you joined as ${member.role}.` } });
        void refresh();
      },
      (error: unknown) => {
        const problem = asProblem(error);
        // Addressed to someone else: signing in with the invited address may still accept it.
        if (problem.status !== 403) window.sessionStorage.removeItem(INVITATION);
        update({ outcome: { problem } });
      },
    );
  }, [session, invitation, refresh, version]);

  const waiting = session === null && invitation !== null;
  if (!outcome && !waiting) return null;
  return (
    <div className="mailed-links">
      {outcome && 'notice' in outcome ? <Notice>{outcome.notice}</Notice> : null}
      {outcome && 'problem' in outcome ? <ProblemAlert problem={outcome.problem} /> : null}
      {waiting ? <Notice>Sign in with the invited address to accept the invitation.</Notice> : null}
      {outcome ? (
        <button type="button" onClick={() => update({ outcome: null })}>
          Dismiss
        </button>
      ) : null}
    </div>
  );
}
