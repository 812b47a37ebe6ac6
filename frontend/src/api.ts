/**
 * Fetch helpers for the Verdict API.
 *
 * Two ways to authenticate, chosen per client:
 * - "key": the public checkout sends `Authorization: Api-Key <publishableKey>` and no cookies
 *   (the server checks the browser's Origin against the key's allowed origins);
 * - "session": staff pages send the session cookie (`credentials: "same-origin"`) and the
 *   `X-CSRFToken` header Django requires on unsafe methods.
 */
import type { VerdictConfig } from "./config";
import type { Decision, Json, PreferenceValue } from "./effects/types";

export interface ErrorDetail {
  path: string;
  message: string;
}

/** The API's error body `{error, detail?, details?}` plus the HTTP status (0: no answer). */
export class ApiError extends Error {
  readonly status: number;
  readonly error: string;
  readonly detail: string | undefined;
  readonly details: ErrorDetail[];

  constructor(status: number, error: string, detail?: string, details: ErrorDetail[] = []) {
    super(detail ? `${error}: ${detail}` : error);
    this.name = "ApiError";
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.details = details;
  }
}

function pathText(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(String).join(".");
  return value === undefined || value === null ? "" : String(value);
}

/** Turn an error response body (any shape, possibly not JSON) into an ApiError. */
export function parseError(status: number, body: unknown, statusText = ""): ApiError {
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const data = body as Record<string, unknown>;
    const details: ErrorDetail[] = Array.isArray(data.details)
      ? data.details.map((item: unknown) => {
          if (item !== null && typeof item === "object") {
            const entry = item as Record<string, unknown>;
            return { path: pathText(entry.path), message: String(entry.message ?? "") };
          }
          return { path: "", message: String(item) };
        })
      : [];
    const error = typeof data.error === "string" ? data.error : `http_${status}`;
    const detail =
      typeof data.detail === "string"
        ? data.detail
        : typeof data.error === "string"
          ? undefined
          : statusText || undefined;
    return new ApiError(status, error, detail, details);
  }
  if (typeof body === "string" && body.trim()) {
    return new ApiError(status, `http_${status}`, body.trim().slice(0, 300));
  }
  return new ApiError(status, `http_${status}`, statusText || undefined);
}

export type AuthMode = "key" | "session";

export interface ApiResponse<T> {
  status: number;
  data: T;
}

export interface Api {
  readonly auth: AuthMode;
  request<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>>;
  get<T>(path: string): Promise<T>;
  execute(entryPoint: string, context: unknown, options?: { dryRun?: boolean }): Promise<Decision>;
  acknowledge(
    executionId: string,
    ackKey: string,
  ): Promise<{ ack_key: string; acknowledged: boolean; accepted_at?: string }>;
  preference(
    executionId: string,
    preferenceKey: string,
    value: PreferenceValue,
  ): Promise<{ preference_key: string; value: Json }>;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A client for `config` authenticating by `auth`; `fetchImpl` is injectable for tests. */
export function createApi(
  config: VerdictConfig,
  auth: AuthMode,
  fetchImpl: typeof fetch = (...args) => fetch(...args),
): Api {
  async function request<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const init: RequestInit = { method, headers };
    if (auth === "key") {
      if (config.publishableKey) headers.Authorization = `Api-Key ${config.publishableKey}`;
      // The key is the credential: a staff session cookie must not widen what the page can do.
      init.credentials = "omit";
    } else {
      init.credentials = "same-origin";
      if (!SAFE_METHODS.has(method.toUpperCase()) && config.csrfToken) {
        headers["X-CSRFToken"] = config.csrfToken;
      }
    }
    if (body !== undefined) init.body = JSON.stringify(body);
    // An absolute URL (a paginated `next` link) is used as is.
    const url = /^https?:\/\//.test(path) ? path : `${config.apiBase}${path}`;
    let response: Response;
    try {
      response = await fetchImpl(url, init);
    } catch (exc) {
      throw new ApiError(0, "network_error", exc instanceof Error ? exc.message : String(exc));
    }
    const data = await readBody(response);
    if (!response.ok) throw parseError(response.status, data, response.statusText);
    return { status: response.status, data: data as T };
  }

  return {
    auth,
    request,
    async get<T>(path: string): Promise<T> {
      return (await request<T>("GET", path)).data;
    },
    async execute(entryPoint, context, options = {}) {
      const body: Record<string, unknown> = { entry_point: entryPoint, context };
      if (options.dryRun) body.dry_run = true;
      return (await request<Decision>("POST", "/api/rules/engine/execute/", body)).data;
    },
    async acknowledge(executionId, ackKey) {
      return (
        await request<{ ack_key: string; acknowledged: boolean; accepted_at?: string }>(
          "POST",
          "/api/rules/engine/acknowledgements/",
          { execution_id: executionId, ack_key: ackKey },
        )
      ).data;
    },
    async preference(executionId, preferenceKey, value) {
      return (
        await request<{ preference_key: string; value: Json }>(
          "POST",
          "/api/rules/engine/preferences/",
          { execution_id: executionId, preference_key: preferenceKey, value },
        )
      ).data;
    },
  };
}

/** Any thrown value as an ApiError (so callers render one shape). */
export function toApiError(exc: unknown): ApiError {
  if (exc instanceof ApiError) return exc;
  return new ApiError(0, "client_error", exc instanceof Error ? exc.message : String(exc));
}
