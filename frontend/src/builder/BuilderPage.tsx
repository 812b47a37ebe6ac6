import { useEffect, useMemo, useState } from "react";
import { type Api, type ApiError, createApi, toApiError } from "../api";
import type { VerdictConfig } from "../config";
import type { EntryPoint } from "../entryPoints";
import { ErrorMessage } from "../ErrorMessage";
import { flattenSchema } from "../schema/fields";
import { StaffGate } from "../StaffGate";
import { type Json, type Node, emit, parse } from "./model";
import { TreeEditor } from "./TreeEditor";

export interface BuilderPageProps {
  config: VerdictConfig;
  api?: Api;
  /** The rule's id; read from `?rule=` when not given. */
  ruleId?: string | null;
}

interface Rule {
  id: string;
  name: string;
  entry_point: string;
  condition: Json;
  version: number;
}

interface RuleListPage {
  results?: Rule[];
}

/** The visual condition builder (staff) for one rule: `/app/builder?rule=<uuid>`. */
export function BuilderPage({ config, api, ruleId }: BuilderPageProps) {
  const id = ruleId !== undefined ? ruleId : new URLSearchParams(window.location.search).get("rule");
  return (
    <main data-testid="builder-page" className="page builder">
      <h1>Condition builder</h1>
      <StaffGate config={config}>
        {id ? <Builder config={config} api={api} ruleId={id} /> : <RulePicker config={config} api={api} />}
      </StaffGate>
    </main>
  );
}

function useSessionApi(config: VerdictConfig, injected?: Api): Api {
  return useMemo(() => injected ?? createApi(config, "session"), [injected, config]);
}

/** Without `?rule=`: a list of rules to open. */
function RulePicker({ config, api: injected }: { config: VerdictConfig; api?: Api }) {
  const api = useSessionApi(config, injected);
  const [rules, setRules] = useState<Rule[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let live = true;
    api.get<RuleListPage | Rule[]>("/api/rules/").then(
      (data) => live && setRules(Array.isArray(data) ? data : (data.results ?? [])),
      (exc: unknown) => live && setError(toApiError(exc)),
    );
    return () => {
      live = false;
    };
  }, [api]);
  if (error) return <ErrorMessage error={error} />;
  if (!rules) return <p className="muted">Loading rules…</p>;
  return (
    <section className="card">
      <h2>Pick a rule</h2>
      <ul>
        {rules.map((rule) => (
          <li key={rule.id}>
            <a href={`/app/builder?rule=${encodeURIComponent(rule.id)}`}>{rule.name}</a>{" "}
            <small className="muted">
              {rule.entry_point} · v{rule.version}
            </small>
          </li>
        ))}
      </ul>
    </section>
  );
}

type SaveState =
  | { kind: "idle" }
  | { kind: "saving" }
  | { kind: "saved"; version: number }
  | { kind: "draft"; id: number | string }
  | { kind: "error"; error: ApiError };

function Builder({ config, api: injected, ruleId }: { config: VerdictConfig; api?: Api; ruleId: string }) {
  const api = useSessionApi(config, injected);
  const [rule, setRule] = useState<Rule | null>(null);
  const [entryPoint, setEntryPoint] = useState<EntryPoint | null>(null);
  // The tree is shown once the schema is known (or known to be unavailable), so its field
  // selects start with the schema's fields.
  const [schemaDone, setSchemaDone] = useState(false);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [tree, setTree] = useState<Node | null>(null);
  const [note, setNote] = useState("");
  const [save, setSave] = useState<SaveState>({ kind: "idle" });

  useEffect(() => {
    let live = true;
    (async () => {
      const loaded = await api.get<Rule>(`/api/rules/${encodeURIComponent(ruleId)}/`);
      if (!live) return;
      try {
        const ep = await api.get<EntryPoint>(`/api/entry-points/${encodeURIComponent(loaded.entry_point)}/`);
        if (live) setEntryPoint(ep);
      } catch {
        // Without the schema the builder still works; fields are then typed in as paths.
      }
      if (!live) return;
      setRule(loaded);
      setTree(parse(loaded.condition));
      setSchemaDone(true);
    })().catch((exc: unknown) => live && setLoadError(toApiError(exc)));
    return () => {
      live = false;
    };
  }, [api, ruleId]);

  const fields = useMemo(() => flattenSchema(entryPoint?.context_schema), [entryPoint]);
  const condition = tree ? emit(tree) : null;

  async function onSave() {
    if (!tree) return;
    setSave({ kind: "saving" });
    try {
      const response = await api.request<Rule & { status?: string }>(
        "PATCH",
        `/api/rules/${encodeURIComponent(ruleId)}/`,
        { condition: emit(tree), change_note: note },
      );
      if (response.status === 202) {
        setSave({ kind: "draft", id: (response.data as { id: number | string }).id });
      } else {
        setRule(response.data);
        setSave({ kind: "saved", version: response.data.version });
      }
    } catch (exc) {
      setSave({ kind: "error", error: toApiError(exc) });
    }
  }

  if (loadError) return <ErrorMessage error={loadError} />;
  if (!rule || !tree || !schemaDone) return <p className="muted">Loading the rule…</p>;

  return (
    <div className="builder-grid">
      <section className="card" aria-labelledby="builder-rule">
        <h2 id="builder-rule">
          {rule.name} <small className="muted">v{rule.version} · {rule.entry_point}</small>
        </h2>
        {fields.length === 0 ? (
          <p className="muted">No schema fields known for this entry point: type paths in.</p>
        ) : null}
        <TreeEditor root={tree} fields={fields} onChange={setTree} />
      </section>
      <section className="card" aria-labelledby="builder-json">
        <h2 id="builder-json">JSONLogic</h2>
        <pre data-testid="json-preview" className="code">
          {JSON.stringify(condition, null, 2)}
        </pre>
        <label className="field">
          Change note
          <input
            data-testid="change-note"
            value={note}
            placeholder="Why this change?"
            onChange={(event) => setNote(event.target.value)}
          />
        </label>
        <button
          type="button"
          data-testid="save-button"
          className="button primary"
          disabled={save.kind === "saving"}
          onClick={() => void onSave()}
        >
          {save.kind === "saving" ? "Saving…" : "Save"}
        </button>
        {save.kind === "saved" ? (
          <p data-testid="save-status" className="save-status" role="status">
            Saved: version {save.version}
          </p>
        ) : null}
        {save.kind === "draft" ? (
          <p data-testid="save-status" className="save-status" role="status">
            Draft #{String(save.id)} awaits approval
          </p>
        ) : null}
        {save.kind === "error" ? <ErrorMessage error={save.error} testId="save-error" /> : null}
      </section>
    </div>
  );
}
