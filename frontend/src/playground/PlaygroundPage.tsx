import { useEffect, useMemo, useState } from "react";
import { type Api, type ApiError, createApi, toApiError } from "../api";
import type { VerdictConfig } from "../config";
import { Effects, type Decision } from "../effects";
import { type EntryPoint, listEntryPoints } from "../entryPoints";
import { ErrorMessage } from "../ErrorMessage";
import { flattenSchema, schemaExample } from "../schema/fields";
import { StaffGate } from "../StaffGate";
import { Explanation } from "./Explanation";

export interface PlaygroundPageProps {
  config: VerdictConfig;
  api?: Api;
}

/** The rule playground (staff): dry-run an entry point with an edited context. */
export function PlaygroundPage({ config, api }: PlaygroundPageProps) {
  return (
    <main data-testid="playground-page" className="page playground">
      <h1>Rule playground</h1>
      <StaffGate config={config}>
        <Playground config={config} api={api} />
      </StaffGate>
    </main>
  );
}

function Playground({ config, api: injected }: PlaygroundPageProps) {
  const api = useMemo(() => injected ?? createApi(config, "session"), [injected, config]);
  const [entryPoints, setEntryPoints] = useState<EntryPoint[] | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [selected, setSelected] = useState("");
  const [contextText, setContextText] = useState("");
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState<Decision | null>(null);
  const [runError, setRunError] = useState<ApiError | null>(null);

  useEffect(() => {
    let live = true;
    listEntryPoints(api).then(
      (list) => {
        if (!live) return;
        setEntryPoints(list);
        const first = list.find((item) => item.key === "checkout") ?? list[0];
        if (first) {
          setSelected(first.key);
          setContextText(JSON.stringify(schemaExample(first.context_schema), null, 2));
        }
      },
      (exc: unknown) => live && setLoadError(toApiError(exc)),
    );
    return () => {
      live = false;
    };
  }, [api]);

  const entryPoint = entryPoints?.find((item) => item.key === selected);
  const fields = useMemo(() => flattenSchema(entryPoint?.context_schema), [entryPoint]);

  function choose(key: string) {
    setSelected(key);
    const next = entryPoints?.find((item) => item.key === key);
    setContextText(JSON.stringify(schemaExample(next?.context_schema), null, 2));
    setResult(null);
    setRunError(null);
  }

  async function dryRun() {
    setResult(null);
    setRunError(null);
    let context: unknown;
    try {
      context = JSON.parse(contextText);
    } catch (exc) {
      setRunError(
        toApiError(new Error(`The context is not valid JSON: ${exc instanceof Error ? exc.message : exc}`)),
      );
      return;
    }
    setRunning(true);
    try {
      setResult(await api.execute(selected, context, { dryRun: true }));
    } catch (exc) {
      setRunError(toApiError(exc));
    } finally {
      setRunning(false);
    }
  }

  if (loadError) return <ErrorMessage error={loadError} />;
  if (entryPoints === null) return <p className="muted">Loading entry points…</p>;

  return (
    <div className="playground-grid">
      <section className="card" aria-labelledby="pg-input">
        <h2 id="pg-input">Input</h2>
        <label className="field">
          Entry point
          <select
            data-testid="entry-point-select"
            value={selected}
            onChange={(event) => choose(event.target.value)}
          >
            {entryPoints.map((item) => (
              <option key={item.key} value={item.key}>
                {item.key}
                {item.critical ? " (critical)" : ""}
              </option>
            ))}
          </select>
        </label>
        {entryPoint?.description ? <p className="muted">{entryPoint.description}</p> : null}
        <label className="field">
          Context (JSON)
          <textarea
            data-testid="context-editor"
            className="code"
            rows={18}
            spellCheck={false}
            value={contextText}
            onChange={(event) => setContextText(event.target.value)}
          />
        </label>
        <button
          type="button"
          data-testid="dry-run-button"
          className="button primary"
          disabled={!selected || running}
          onClick={() => void dryRun()}
        >
          {running ? "Running…" : "Dry run"}
        </button>
        <details className="schema-guide" open>
          <summary>Schema of {selected || "the entry point"}</summary>
          <div data-testid="schema-view">
            {fields.length > 0 ? (
              <table className="fields">
                <thead>
                  <tr>
                    <th scope="col">Path</th>
                    <th scope="col">Type</th>
                    <th scope="col">Required</th>
                  </tr>
                </thead>
                <tbody>
                  {fields.map((field) => (
                    <tr key={field.path}>
                      <td>
                        <code>{field.path}</code>
                      </td>
                      <td>
                        {field.types.join(" | ") || "any"}
                        {field.enum ? ` (${field.enum.map((item) => JSON.stringify(item)).join(", ")})` : ""}
                      </td>
                      <td>{field.required ? "yes" : ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : null}
            <pre className="code">{JSON.stringify(entryPoint?.context_schema ?? {}, null, 2)}</pre>
          </div>
        </details>
      </section>

      <section className="card" aria-labelledby="pg-output">
        <h2 id="pg-output">Result</h2>
        {runError ? <ErrorMessage error={runError} testId="dry-run-error" /> : null}
        {result ? <DryRunResult result={result} /> : null}
        {!result && !runError ? <p className="muted">Run the context to see what the rules decide.</p> : null}
      </section>
    </div>
  );
}

function DryRunResult({ result }: { result: Decision }) {
  return (
    <div data-testid="dry-run-result" className="dry-run-result">
      <p>
        Outcome <strong>{result.outcome}</strong>
        {result.blocking ? " · blocking" : " · not blocking"}
        {result.duration_ms !== undefined ? ` · ${result.duration_ms} ms` : ""}
      </p>
      <h3>Matched rules</h3>
      {result.matched_rules.length === 0 ? <p className="muted">No rule matched.</p> : null}
      <ol className="matched-rules">
        {result.matched_rules.map((rule) => (
          <li key={rule.id} data-testid="matched-rule">
            {rule.name} <small className="muted">v{rule.version} · priority {rule.priority}</small>
          </li>
        ))}
      </ol>
      <h3>Effects</h3>
      {result.effects.length === 0 ? <p className="muted">No effects.</p> : null}
      <Effects decision={result} readOnly />
      <h3>Every rule</h3>
      {result.rules === undefined ? (
        <p className="muted">The server did not explain the rules of this run.</p>
      ) : null}
      <ol className="rule-results">
        {(result.rules ?? []).map((rule) => (
          <li key={rule.id} data-testid="rule-result" data-outcome={rule.outcome} className={`rule-result outcome-${rule.outcome}`}>
            <p>
              <strong>{rule.name}</strong>{" "}
              <span className="badge">{rule.outcome}</span>
              {rule.version !== undefined ? <small className="muted"> v{rule.version}</small> : null}
            </p>
            {rule.error ? <p className="error-text">{rule.error}</p> : null}
            <Explanation tree={rule.explanation} />
          </li>
        ))}
      </ol>
    </div>
  );
}
