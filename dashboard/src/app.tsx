/**
 * The dashboard's frame: the pages by address, the navigation for ops staff or for
 * customers, and the sign-in gate. Pages load on first use, so the first paint carries only
 * the frame and the page asked for.
 */
import { type ComponentType, type LazyExoticComponent, lazy, Suspense, useEffect, useRef } from 'react';
import { MailedLinks } from './links.tsx';
import { OrganizationProvider, useOrganization } from './organization.tsx';
import { currentPath, Link, match, navigate, Redirect, useLocation } from './router.tsx';
import { isStaff, useSession, useSignedIn } from './session.tsx';
import { Loading } from './ui/feedback.tsx';

type PageModule = { default: ComponentType<{ params: Record<string, string> }> };

interface Route {
  path: string;
  /** The page's own chunk, fetched on first use. */
  load: () => Promise<PageModule>;
  /** In the navigation under this label; absent for pages reached by links. */
  label?: string;
  /** Who sees it: ops staff, customers, or everyone signed in. */
  for: 'staff' | 'customer' | 'all';
}

const routes: Route[] = [
  { path: '/fleet', label: 'Fleet', for: 'staff', load: () => import('./pages/ops/fleet.tsx') },
  {
    path: '/upgrades',
    label: 'Upgrades',
    for: 'staff',
    load: () => import('./pages/ops/upgrades.tsx'),
  },
  { path: '/orders', label: 'Orders', for: 'staff', load: () => import('./pages/ops/orders.tsx') },
  {
    path: '/organizations',
    label: 'Organizations',
    for: 'staff',
    load: () => import('./pages/ops/organizations.tsx'),
  },
  {
    path: '/organizations/:id',
    for: 'staff',
    load: () => import('./pages/ops/organization.tsx'),
  },
  {
    path: '/clusters',
    label: 'Clusters',
    for: 'staff',
    load: () => import('./pages/ops/clusters.tsx'),
  },
  { path: '/billing', label: 'Billing', for: 'staff', load: () => import('./pages/ops/billing.tsx') },
  { path: '/audit', label: 'Audit log', for: 'staff', load: () => import('./pages/ops/audit.tsx') },
  {
    path: '/servers',
    label: 'My servers',
    for: 'customer',
    load: () => import('./pages/portal/servers.tsx'),
  },
  {
    path: '/order',
    label: 'Order a server',
    for: 'customer',
    load: () => import('./pages/portal/order.tsx'),
  },
  {
    path: '/invoices',
    label: 'Invoices',
    for: 'customer',
    load: () => import('./pages/portal/invoices.tsx'),
  },
  {
    path: '/members',
    label: 'Members',
    for: 'customer',
    load: () => import('./pages/portal/members.tsx'),
  },
  {
    path: '/sponsor',
    label: 'Sponsor page',
    for: 'customer',
    load: () => import('./pages/portal/sponsor.tsx'),
  },
  { path: '/tokens', label: 'API tokens', for: 'all', load: () => import('./pages/portal/tokens.tsx') },
  { path: '/instances/:id', for: 'all', load: () => import('./pages/instance.tsx') },
];

const publicRoutes: Route[] = [
  { path: '/sign-in', for: 'all', load: () => import('./pages/sign-in.tsx') },
  { path: '/sign-up', for: 'all', load: () => import('./pages/sign-up.tsx') },
];

function find(list: Route[], path: string) {
  for (const route of list) {
    const params = match(route.path, path);
    if (params) return { route, params };
  }
  return null;
}

const pages = new Map<Route, LazyExoticComponent<PageModule['default']>>();

function pageOf(route: Route) {
  let page = pages.get(route);
  if (!page) {
    page = lazy(route.load);
    pages.set(route, page);
  }
  return page;
}

// The page asked for starts loading now, beside the session check, not after it.
find([...routes, ...publicRoutes], currentPath())?.route.load();

function RoutePage({ route, params }: { route: Route; params: Record<string, string> }) {
  const Page = pageOf(route);
  return (
    <Suspense fallback={<Loading lines={6} />}>
      <Page params={params} />
    </Suspense>
  );
}

/** Moves focus to the new page's main area, so keyboard and screen reader users land there. */
function useFocusOnNavigation(path: string) {
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on every change of page
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
  }, [path]);
  return main;
}

function OrganizationSwitcher() {
  const session = useSignedIn();
  const { current, choose } = useOrganization();
  if (session.memberships.length < 2 || !current) return null;
  return (
    <label className="switcher">
      <span className="visually-hidden">Organization</span>
      <select value={current.organizationId} onChange={(event) => choose(event.target.value)}>
        {session.memberships.map((m) => (
          <option key={m.organizationId} value={m.organizationId}>
            {m.organizationName}
          </option>
        ))}
      </select>
    </label>
  );
}

function Frame({ children, nav, path }: { children: React.ReactNode; nav: Route[]; path: string }) {
  const { session, signOut } = useSession();
  const main = useFocusOnNavigation(path);
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand">
          Woolly
        </Link>
        {session ? (
          <>
            <nav aria-label="Main">
              <ul>
                {nav.map((route) => (
                  <li key={route.path}>
                    <Link
                      to={route.path}
                      aria-current={
                        path === route.path || path.startsWith(`${route.path}/`) ? 'page' : undefined
                      }
                    >
                      {route.label}
                    </Link>
                  </li>
                ))}
              </ul>
            </nav>
            <div className="account">
              {isStaff(session) ? null : <OrganizationSwitcher />}
              <span className="muted">{session.user.email}</span>
              <button type="button" onClick={() => signOut().then(() => navigate('/sign-in'))}>
                Sign out
              </button>
            </div>
          </>
        ) : null}
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <MailedLinks />
        {children}
      </main>
    </>
  );
}

export function App() {
  const { session } = useSession();
  const { path } = useLocation();

  if (session === undefined) {
    return (
      <Frame nav={[]} path={path}>
        <Loading lines={6} />
      </Frame>
    );
  }

  if (session === null) {
    const found = find(publicRoutes, path);
    if (!found) return <Redirect to={`/sign-in?next=${encodeURIComponent(path)}`} />;
    return (
      <Frame nav={[]} path={path}>
        <RoutePage route={found.route} params={found.params} />
      </Frame>
    );
  }

  const staff = isStaff(session);
  const allowed = routes.filter(
    (route) => route.for === 'all' || route.for === (staff ? 'staff' : 'customer'),
  );
  const found = find(allowed, path);
  if (!found) return <Redirect to={staff ? '/fleet' : '/servers'} />;
  const nav = allowed.filter((route) => route.label);
  return (
    <OrganizationProvider>
      <Frame nav={nav} path={path}>
        <RoutePage route={found.route} params={found.params} />
      </Frame>
    </OrganizationProvider>
  );
}
