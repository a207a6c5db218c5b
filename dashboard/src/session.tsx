/**
 * Who is signed in. The session lives in the API's HttpOnly cookie; this page only knows the
 * user, their memberships and the CSRF token that `GET /v1/session` hands back.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from 'react';
import { api, ok, type Schemas, setCsrfToken } from './api.ts';

export type Session = Schemas['Session'];
export type Role = Session['memberships'][number]['role'];

interface SessionState {
  /** undefined while the first answer is awaited; null when nobody is signed in. */
  session: Session | null | undefined;
  signIn: (email: string, password: string) => Promise<void>;
  signOut: () => Promise<void>;
  /** Asks the API again (after a change of memberships or of the e-mail's verification). */
  refresh: () => Promise<void>;
}

const SessionContext = createContext<SessionState | null>(null);

// Asked as the script starts, before React's first render.
const firstAnswer = api.GET('/v1/session');

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>();

  const adopt = useCallback((next: Session | null) => {
    setCsrfToken(next?.csrfToken ?? null);
    setSession(next);
  }, []);

  useEffect(() => {
    firstAnswer.then(
      ({ data }) => adopt(data ?? null),
      () => adopt(null),
    );
  }, [adopt]);

  const signIn = useCallback(
    async (email: string, password: string) => {
      adopt(await ok(api.POST('/v1/session', { body: { email, password } })));
    },
    [adopt],
  );

  const signOut = useCallback(async () => {
    await ok(api.DELETE('/v1/session'));
    adopt(null);
  }, [adopt]);

  const refresh = useCallback(async () => {
    const { data } = await api.GET('/v1/session');
    adopt(data ?? null);
  }, [adopt]);

  return (
    <SessionContext.Provider value={{ session, signIn, signOut, refresh }}>
      {children}
    </SessionContext.Provider>
  );
}

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (!state) throw new Error('useSession needs a SessionProvider');
  return state;
}

/** The signed-in session; only for pages shown after sign-in. */
export function useSignedIn(): Session {
  const { session } = useSession();
  if (!session) throw new Error('useSignedIn outside a signed-in page');
  return session;
}

export const isStaff = (session: Session): boolean => session.user.staffRole !== null;

/** The caller's role in an organization ('staff' for staff), or null when not a member. */
export function roleIn(session: Session, organizationId: string): Role | 'staff' | null {
  if (isStaff(session)) return 'staff';
  return session.memberships.find((m) => m.organizationId === organizationId)?.role ?? null;
}

/** Whether the caller may spend money or change servers for the organization. */
export function mayManage(session: Session, organizationId: string): boolean {
  const role = roleIn(session, organizationId);
  return role === 'staff' || role === 'owner' || role === 'admin' || role === 'billing';
}
