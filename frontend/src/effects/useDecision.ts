import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { type Api, type ApiError, toApiError } from "../api";
import type { Decision } from "./types";

export interface UseDecisionOptions {
  api: Api;
  /** Wait this long after the last context change before asking (default 250 ms). */
  debounceMs?: number;
  /** Ask for a dry run (playground). */
  dryRun?: boolean;
  /** When false nothing is requested (e.g. while the context is known to be incomplete). */
  enabled?: boolean;
}

export interface DecisionState {
  decision: Decision | null;
  loading: boolean;
  error: ApiError | null;
  /**
   * True when `decision` answers the current context: no request pending or in flight for a
   * newer one. A critical flow must not proceed on a decision that is not current.
   */
  current: boolean;
  /** Ask again now (cancels a pending debounced request); resolves with the new decision. */
  refresh: () => Promise<Decision | null>;
}

/**
 * Ask the engine for a decision on `entryPoint` with `context`, again whenever the context
 * changes (debounced). Only the answer to the latest request is kept.
 */
export function useDecision(
  entryPoint: string,
  context: unknown,
  options: UseDecisionOptions,
): DecisionState {
  const { api, debounceMs = 250, dryRun = false, enabled = true } = options;
  const contextKey = JSON.stringify(context ?? null);

  const [decision, setDecision] = useState<Decision | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const [answeredKey, setAnsweredKey] = useState<string | null>(null);

  // Latest values for the async callbacks, without re-creating them on every render.
  const apiRef = useRef(api);
  const contextRef = useRef(context);
  useLayoutEffect(() => {
    apiRef.current = api;
    contextRef.current = context;
  });

  const sequence = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const started = useRef(false);

  const run = useCallback(async (): Promise<Decision | null> => {
    if (timer.current !== null) {
      clearTimeout(timer.current);
      timer.current = null;
    }
    const mine = ++sequence.current;
    const sentContext = contextRef.current;
    const sentKey = JSON.stringify(sentContext ?? null);
    setLoading(true);
    try {
      const answer = await apiRef.current.execute(entryPoint, sentContext, { dryRun });
      if (mine !== sequence.current) return answer;
      setDecision(answer);
      setError(null);
      setAnsweredKey(sentKey);
      return answer;
    } catch (exc) {
      if (mine === sequence.current) {
        setError(toApiError(exc));
        setAnsweredKey(sentKey);
      }
      return null;
    } finally {
      if (mine === sequence.current) setLoading(false);
    }
  }, [entryPoint, dryRun]);

  useEffect(() => {
    if (!enabled) return;
    // The first request goes out at once; later context changes wait for the user to pause.
    if (!started.current) {
      started.current = true;
      void run();
      return;
    }
    timer.current = setTimeout(() => {
      timer.current = null;
      void run();
    }, debounceMs);
    return () => {
      if (timer.current !== null) {
        clearTimeout(timer.current);
        timer.current = null;
      }
    };
  }, [contextKey, enabled, debounceMs, run]);

  // Answers arriving after unmount are dropped.
  useEffect(() => {
    return () => {
      sequence.current += 1;
    };
  }, []);

  const current = !loading && answeredKey === contextKey && decision !== null && error === null;
  return { decision, loading, error, current, refresh: run };
}
