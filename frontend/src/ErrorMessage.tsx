import type { ApiError } from "./api";

export interface ErrorMessageProps {
  error: ApiError;
  testId?: string;
}

/** An API error as text: its code, its detail and every `{path, message}` it carries. */
export function ErrorMessage({ error, testId }: ErrorMessageProps) {
  return (
    <div className="error-message" role="alert" data-testid={testId}>
      <p>
        <strong>{error.error}</strong>
        {error.status ? ` (HTTP ${error.status})` : ""}
        {error.detail ? `: ${error.detail}` : ""}
      </p>
      {error.details.length > 0 ? (
        <ul>
          {error.details.map((item, index) => (
            <li key={index}>
              <code>{item.path || "(root)"}</code> {item.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
