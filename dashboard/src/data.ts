import { useCallback, useEffect, useRef, useState } from 'react';
import { asProblem, type Problem } from './api.ts';

export interface Query<T> {
  data: T | undefined;
  error: Problem | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads data for a view and keeps it fresh: `refreshMs` polls while the view is shown. A
 * refresh keeps the shown data until the new answer arrives (no flicker); a change of `deps`
 * (plain values, compared as JSON) starts over from a skeleton.
 */
export function useQuery<T>(
  load: () => Promise<T>,
  deps: readonly unknown[],
  options: { refreshMs?: number } = {},
): Query<T> {
  const [state, setState] = useState<{ data?: T; error?: Problem; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  const key = JSON.stringify(deps);

  // biome-ignore lint/correctness/useExhaustiveDependencies: the caller's deps (as `key`) decide when to start over
  useEffect(() => {
    setState({ loading: true });
  }, [key]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: as above, plus an explicit reload
  useEffect(() => {
    let live = true;
    const run = () =>
      loader.current().then(
        (data) => live && setState({ data, loading: false }),
        (error: unknown) => live && setState((was) => ({ ...was, error: asProblem(error), loading: false })),
      );
    run();
    const timer = options.refreshMs ? window.setInterval(run, options.refreshMs) : undefined;
    return () => {
      live = false;
      window.clearInterval(timer);
    };
  }, [key, round, options.refreshMs]);

  const reload = useCallback(() => setRound((n) => n + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

export interface Action {
  busy: boolean;
  error: Problem | undefined;
  /** Runs the change; its Problem is shown, not thrown. True when it succeeded. */
  run: (change: () => Promise<unknown>) => Promise<boolean>;
  clear: () => void;
}

/** A change started by the user (a button, a form): busy while it runs, its error kept. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Problem>();
  const run = useCallback(async (change: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await change();
      return true;
    } catch (caught) {
      setError(asProblem(caught));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(undefined) };
}
