/**
 * The organization a customer is working in. Someone in several organizations picks one in
 * the header; the choice is remembered in this browser.
 */
import { createContext, type ReactNode, useContext, useState } from 'react';
import { type Session, useSignedIn } from './session.tsx';

const KEY = 'woolly.organization';

type Membership = Session['memberships'][number];

interface OrganizationState {
  current: Membership | undefined;
  choose: (organizationId: string) => void;
}

const OrganizationContext = createContext<OrganizationState | null>(null);

export function OrganizationProvider({ children }: { children: ReactNode }) {
  const session = useSignedIn();
  const [chosen, setChosen] = useState(() => window.localStorage.getItem(KEY));
  const current = session.memberships.find((m) => m.organizationId === chosen) ?? session.memberships[0];
  const choose = (organizationId: string) => {
    window.localStorage.setItem(KEY, organizationId);
    setChosen(organizationId);
  };
  return <OrganizationContext.Provider value={{ current, choose }}>{children}</OrganizationContext.Provider>;
}

export function useOrganization(): OrganizationState {
  const state = useContext(OrganizationContext);
  if (!state) throw new Error('useOrganization needs an OrganizationProvider');
  return state;
}
