/**
 * Page configuration injected by Django into index.html before </head>:
 *
 *   <script id="verdict-config" type="application/json">{"apiBase": "", ...}</script>
 *
 * It is read as JSON (never evaluated). Without it (tests, `npm run dev`) the defaults apply.
 */

export interface VerdictUser {
  username: string;
  isStaff: boolean;
}

export interface VerdictConfig {
  apiBase: string;
  publishableKey: string | null;
  csrfToken: string;
  user: VerdictUser | null;
  loginUrl: string;
}

export const DEFAULT_CONFIG: VerdictConfig = {
  apiBase: "",
  publishableKey: null,
  csrfToken: "",
  user: null,
  loginUrl: "/admin/login/?next=/app/playground",
};

function asString(value: unknown, fallback: string): string {
  return typeof value === "string" ? value : fallback;
}

function asUser(value: unknown): VerdictUser | null {
  if (value === null || typeof value !== "object") return null;
  const raw = value as Record<string, unknown>;
  if (typeof raw.username !== "string") return null;
  return { username: raw.username, isStaff: raw.isStaff === true };
}

/** Parse the injected JSON; anything missing or of the wrong type falls back to the default. */
export function parseConfig(text: string | null | undefined): VerdictConfig {
  if (!text) return { ...DEFAULT_CONFIG };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ...DEFAULT_CONFIG };
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return { ...DEFAULT_CONFIG };
  const data = raw as Record<string, unknown>;
  return {
    apiBase: asString(data.apiBase, DEFAULT_CONFIG.apiBase).replace(/\/+$/, ""),
    publishableKey:
      typeof data.publishableKey === "string" && data.publishableKey ? data.publishableKey : null,
    csrfToken: asString(data.csrfToken, DEFAULT_CONFIG.csrfToken),
    user: asUser(data.user),
    loginUrl: asString(data.loginUrl, DEFAULT_CONFIG.loginUrl),
  };
}

/** Read `#verdict-config` from the document (re-read on every call: cheap, and tests swap it). */
export function readConfig(doc: Document = document): VerdictConfig {
  return parseConfig(doc.getElementById("verdict-config")?.textContent);
}
