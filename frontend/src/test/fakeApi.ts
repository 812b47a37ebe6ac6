import { vi } from "vitest";
import { type Api, createApi } from "../api";
import { DEFAULT_CONFIG, type VerdictConfig } from "../config";

export interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  credentials: RequestCredentials | undefined;
  body: unknown;
}

export type Handler = (call: Call) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>;

/** A fetch double: records every call and answers with `handler`. */
export function fakeFetch(handler: Handler) {
  const calls: Call[] = [];
  const fetchImpl = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const call: Call = {
      url: String(input),
      method: init?.method ?? "GET",
      headers: (init?.headers ?? {}) as Record<string, string>,
      credentials: init?.credentials,
      body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    const { status, body } = await handler(call);
    return new Response(body === undefined ? "" : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json" },
    });
  });
  return { calls, fetchImpl: fetchImpl as unknown as typeof fetch };
}

export const TEST_CONFIG: VerdictConfig = {
  ...DEFAULT_CONFIG,
  publishableKey: "vk_pk_test",
  csrfToken: "csrf-test",
  user: { username: "staff", isStaff: true },
};

export function fakeApi(handler: Handler, auth: "key" | "session" = "key", config = TEST_CONFIG) {
  const { calls, fetchImpl } = fakeFetch(handler);
  const api: Api = createApi(config, auth, fetchImpl);
  return { api, calls };
}
