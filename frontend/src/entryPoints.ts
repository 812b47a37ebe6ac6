import type { Api } from "./api";

export interface EntryPoint {
  key: string;
  description?: string;
  context_schema?: unknown;
  critical?: boolean;
}

interface Page<T> {
  count?: number;
  next?: string | null;
  results?: T[];
}

/** Every entry point (GET /api/entry-points/, following `next` links; at most 20 pages). */
export async function listEntryPoints(api: Api): Promise<EntryPoint[]> {
  const all: EntryPoint[] = [];
  let url: string | null = "/api/entry-points/";
  for (let page = 0; url && page < 20; page += 1) {
    const data: Page<EntryPoint> | EntryPoint[] = await api.get<Page<EntryPoint> | EntryPoint[]>(url);
    if (Array.isArray(data)) return data;
    all.push(...(data.results ?? []));
    url = data.next ?? null;
  }
  return all;
}
