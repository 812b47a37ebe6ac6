import type { Json, RenderedMessage } from "./types";

function jsonText(value: Json | undefined): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Structured (JSON) content as a small key/value list; every value is rendered as text. */
function JsonContent({ value }: { value: Json }) {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value);
    return (
      <dl className="effect-json">
        {entries.map(([key, item]) => (
          <div key={key} className="effect-json-row">
            <dt>{key}</dt>
            <dd>{jsonText(item)}</dd>
          </div>
        ))}
      </dl>
    );
  }
  if (Array.isArray(value)) {
    return (
      <ul className="effect-json">
        {value.map((item, index) => (
          <li key={index}>{jsonText(item)}</li>
        ))}
      </ul>
    );
  }
  return <p className="effect-text">{jsonText(value)}</p>;
}

/**
 * The body of an effect, by the content type the server rendered it as.
 *
 * Only `text/html` from the server is ever rendered as markup; everything else (plain text,
 * JSON values, and anything the page itself knows, such as the context) goes in as text.
 */
export function MessageContent({ message }: { message: RenderedMessage | null | undefined }) {
  if (!message) return null;
  const { content_type: contentType, content } = message;
  if (contentType === "text/html" && typeof content === "string") {
    return (
      <div
        className="effect-html"
        // Safe: this string is the server's rendering of an author's template. Django rendered
        // it with autoescape (so context values are escaped) and then sanitised it with bleach
        // (an allow-list of tags and attributes, no scripts or event handlers). Nothing
        // produced in the browser is ever passed here.
        dangerouslySetInnerHTML={{ __html: content }}
      />
    );
  }
  if (contentType === "application/json") {
    let value: Json = content;
    if (typeof content === "string") {
      try {
        value = JSON.parse(content) as Json;
      } catch {
        value = content;
      }
    }
    return <JsonContent value={value} />;
  }
  // text/plain and anything unknown: text only.
  return <p className="effect-text">{jsonText(content)}</p>;
}
