import { useState } from "react";
import type { SchemaField } from "../schema/fields";
import {
  COMPARISON_OPERATORS,
  type ComparisonNode,
  type ComparisonOp,
  type GroupKind,
  type GroupNode,
  type Json,
  type Node,
  OPERATOR_LABELS,
  type RawNode,
  addChild,
  changeOperator,
  coerceValue,
  emptyGroup,
  mapNode,
  newComparison,
  parse,
  removeNode,
  setGroupKind,
  valueToText,
} from "./model";

export interface TreeEditorProps {
  root: Node;
  fields: SchemaField[];
  onChange: (root: Node) => void;
}

interface Edit {
  root: Node;
  fields: SchemaField[];
  onChange: (root: Node) => void;
}

const CUSTOM = "__custom__";
const GROUP_LABELS: Record<GroupKind, string> = {
  all: "All of (and)",
  any: "Any of (or)",
  not: "Not (!)",
};

function typesFor(fields: SchemaField[], path: string): string[] {
  return fields.find((field) => field.path === path)?.types ?? [];
}

/** The condition as an editable tree; every change goes through `onChange` with a new root. */
export function TreeEditor({ root, fields, onChange }: TreeEditorProps) {
  const edit: Edit = { root, fields, onChange };
  if (root.kind === "group") {
    return (
      <div className="tree">
        <GroupEditor node={root} edit={edit} isRoot />
      </div>
    );
  }
  // A root that is a single comparison or raw JSON: adding next to it wraps both in `all`.
  return (
    <div className="tree">
      <NodeEditor node={root} edit={edit} isRoot />
      <AddButtons groupId={root.id} edit={edit} />
    </div>
  );
}

function NodeEditor({ node, edit, isRoot = false }: { node: Node; edit: Edit; isRoot?: boolean }) {
  if (node.kind === "group") return <GroupEditor node={node} edit={edit} isRoot={isRoot} />;
  if (node.kind === "comparison") return <ComparisonEditor node={node} edit={edit} />;
  return <RawEditor node={node} edit={edit} />;
}

function RemoveButton({ id, edit, label }: { id: string; edit: Edit; label: string }) {
  return (
    <button
      type="button"
      className="link-button danger"
      data-testid="remove-node"
      aria-label={label}
      onClick={() => edit.onChange(removeNode(edit.root, id))}
    >
      Remove
    </button>
  );
}

function AddButtons({ groupId, edit }: { groupId: string; edit: Edit }) {
  const firstField = edit.fields[0];
  return (
    <div className="tree-add">
      <button
        type="button"
        className="button secondary small"
        data-testid="add-condition"
        onClick={() =>
          edit.onChange(
            addChild(edit.root, groupId, newComparison(firstField?.path ?? "", firstField?.types ?? [])),
          )
        }
      >
        + Condition
      </button>
      <button
        type="button"
        className="button secondary small"
        data-testid="add-group"
        onClick={() => edit.onChange(addChild(edit.root, groupId, emptyGroup("all")))}
      >
        + Group
      </button>
    </div>
  );
}

function GroupEditor({ node, edit, isRoot }: { node: GroupNode; edit: Edit; isRoot: boolean }) {
  const labelId = `${node.id}-kind`;
  return (
    <fieldset data-testid="group" data-kind={node.group} className={`tree-group kind-${node.group}`}>
      <legend className="tree-group-head">
        <label id={labelId} className="visually-hidden" htmlFor={`${node.id}-select`}>
          Group kind
        </label>
        <select
          id={`${node.id}-select`}
          data-testid="group-kind-select"
          value={node.group}
          onChange={(event) =>
            edit.onChange(setGroupKind(edit.root, node.id, event.target.value as GroupKind))
          }
        >
          {(Object.keys(GROUP_LABELS) as GroupKind[]).map((kind) => (
            <option key={kind} value={kind}>
              {GROUP_LABELS[kind]}
            </option>
          ))}
        </select>
        {node.group === "not" && node.children.length > 1 ? (
          <span className="muted"> (not all of these together)</span>
        ) : null}
        {!isRoot ? <RemoveButton id={node.id} edit={edit} label="Remove group" /> : null}
      </legend>
      {node.children.length === 0 ? <p className="muted small">Empty group.</p> : null}
      <ul className="tree-children">
        {node.children.map((child) => (
          <li key={child.id}>
            <NodeEditor node={child} edit={edit} />
          </li>
        ))}
      </ul>
      <AddButtons groupId={node.id} edit={edit} />
    </fieldset>
  );
}

function FieldPicker({ node, edit }: { node: ComparisonNode; edit: Edit }) {
  const known = edit.fields.some((field) => field.path === node.field);
  // A path outside the schema is always shown in the text input; "Other path…" opens it too.
  const [chosen, setChosen] = useState(false);
  const custom = chosen || !known;
  const update = (field: string) =>
    edit.onChange(mapNode(edit.root, node.id, (old) => ({ ...(old as ComparisonNode), field })));
  return (
    <>
      <select
        aria-label="Field"
        data-testid="field-select"
        value={custom ? CUSTOM : node.field}
        onChange={(event) => {
          if (event.target.value === CUSTOM) {
            setChosen(true);
            return;
          }
          setChosen(false);
          update(event.target.value);
        }}
      >
        {edit.fields.map((field) => (
          <option key={field.path} value={field.path}>
            {field.path} ({field.types.join("|") || "any"})
          </option>
        ))}
        <option value={CUSTOM}>Other path…</option>
      </select>
      {custom ? (
        <input
          aria-label="Field path"
          data-testid="field-path-input"
          className="path-input"
          value={node.field}
          placeholder="e.g. cart.total"
          onChange={(event) => update(event.target.value)}
        />
      ) : null}
    </>
  );
}

function ValueInput({ node, edit }: { node: ComparisonNode; edit: Edit }) {
  const types = typesFor(edit.fields, node.field);
  const field = edit.fields.find((item) => item.path === node.field);
  // The text being typed is kept as is ("1." stays "1."); the node gets its typed value. The
  // value only changes from outside with the operator, and the input is keyed by it.
  const [text, setText] = useState(() => valueToText(node.value, node.op));
  const listId = field?.enum ? `${node.id}-enum` : undefined;
  return (
    <>
      <input
        aria-label={node.op === "in" ? "Values, comma separated" : "Value"}
        data-testid="value-input"
        data-type={types.join("|") || "any"}
        className="value-input"
        value={text}
        list={listId}
        inputMode={types.includes("number") || types.includes("integer") ? "decimal" : undefined}
        onChange={(event) => {
          const value = coerceValue(event.target.value, node.op, types);
          setText(event.target.value);
          edit.onChange(mapNode(edit.root, node.id, (old) => ({ ...(old as ComparisonNode), value })));
        }}
      />
      {listId && field?.enum ? (
        <datalist id={listId}>
          {field.enum.map((item) => (
            <option key={String(item)} value={String(item)} />
          ))}
        </datalist>
      ) : null}
    </>
  );
}

function ComparisonEditor({ node, edit }: { node: ComparisonNode; edit: Edit }) {
  const types = typesFor(edit.fields, node.field);
  return (
    <div data-testid="condition" className="tree-condition">
      <FieldPicker node={node} edit={edit} />
      <select
        aria-label="Operator"
        data-testid="operator-select"
        value={node.op}
        onChange={(event) =>
          edit.onChange(
            mapNode(edit.root, node.id, () =>
              changeOperator(node, event.target.value as ComparisonOp, types),
            ),
          )
        }
      >
        {COMPARISON_OPERATORS.map((op) => (
          <option key={op} value={op}>
            {OPERATOR_LABELS[op]}
          </option>
        ))}
      </select>
      {node.op !== "!!" ? <ValueInput key={node.op} node={node} edit={edit} /> : null}
      <RemoveButton id={node.id} edit={edit} label="Remove condition" />
    </div>
  );
}

function RawEditor({ node, edit }: { node: RawNode; edit: Edit }) {
  const [text, setText] = useState(() => JSON.stringify(node.json, null, 2));
  const [invalid, setInvalid] = useState<string | null>(null);
  return (
    <div data-testid="raw-node" className="tree-raw">
      <p className="muted small">
        Kept as written (the builder does not edit this part; edit it as JSON).
      </p>
      <textarea
        aria-label="Raw JSONLogic"
        className="code"
        rows={Math.min(10, text.split("\n").length)}
        spellCheck={false}
        value={text}
        onChange={(event) => setText(event.target.value)}
        onBlur={() => {
          let json: Json;
          try {
            json = JSON.parse(text) as Json;
          } catch (exc) {
            setInvalid(exc instanceof Error ? exc.message : String(exc));
            return;
          }
          setInvalid(null);
          if (JSON.stringify(json) === JSON.stringify(node.json)) return;
          const parsed = parse(json);
          edit.onChange(mapNode(edit.root, node.id, () => ({ ...parsed, id: node.id })));
        }}
      />
      {invalid ? (
        <p className="error-text" role="alert">
          Not valid JSON: {invalid}
        </p>
      ) : null}
      <RemoveButton id={node.id} edit={edit} label="Remove raw part" />
    </div>
  );
}
