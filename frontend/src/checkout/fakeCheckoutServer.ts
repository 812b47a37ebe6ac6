import type { Call } from "../test/fakeApi";

interface CheckoutContext {
  user: { id: number | string; name?: string; country?: string; email?: string };
  cart: { total: number; currency: string; items: { sku: string; category?: string }[] };
}

/**
 * A stand-in for the server with the demo's checkout rules: free shipping banner (total >= 50),
 * age acknowledgement when an item is alcohol (blocking until recorded for the user), a modal
 * above 1000, the newsletter question from the second checkout on.
 */
export function checkoutServer() {
  const acknowledged = new Set<string>();
  const executions = new Map<string, string>();
  const checkouts = new Map<string, number>();
  const contexts: CheckoutContext[] = [];
  let sequence = 0;

  function execute(context: CheckoutContext) {
    contexts.push(context);
    const subject = String(context.user.id);
    const executionId = `exec-${++sequence}`;
    executions.set(executionId, subject);
    const effects: unknown[] = [];
    if (context.cart.total >= 50) {
      effects.push({
        type: "display_message",
        rule_id: "free-shipping",
        action_index: 0,
        blocking: false,
        level: "success",
        placement: "banner",
        dismissible: true,
        message: {
          format: "html",
          content_type: "text/html",
          // As the server would render it: the name escaped, the template's markup kept.
          content: `<p>Good news, <strong>${escapeHtml(context.user.name ?? "friend")}</strong>: free shipping.</p>`,
        },
      });
    }
    if (context.cart.items.some((item) => item.category === "alcohol")) {
      const done = acknowledged.has(`${subject}:age-check-v1`);
      effects.push({
        type: "user_acknowledge",
        rule_id: "age",
        action_index: 0,
        ack_key: "age-check-v1",
        title: "Age confirmation",
        acknowledged: done,
        blocking: !done,
        message: { format: "markdown", content_type: "text/html", content: "<p>Confirm your age.</p>" },
      });
    }
    if (context.cart.total > 1000) {
      effects.push({
        type: "display_modal",
        rule_id: "large",
        action_index: 0,
        blocking: false,
        title: "Large order",
        dismissible: false,
        buttons: [
          { id: "confirm", label: "Place order", style: "primary" },
          { id: "cancel", label: "Review cart", style: "secondary" },
        ],
        message: { format: "text", content_type: "text/plain", content: "Please confirm." },
      });
    }
    const count = checkouts.get(subject) ?? 0;
    if (count >= 1) {
      effects.push({
        type: "user_preference",
        rule_id: "newsletter",
        action_index: 0,
        blocking: false,
        preference_key: "newsletter",
        options: [
          { value: "weekly", label: "Yes, weekly" },
          { value: "never", label: "No thanks" },
        ],
        default: "never",
        value: "never",
        answered: false,
        message: { format: "text", content_type: "text/plain", content: "Newsletter?" },
      });
    }
    checkouts.set(subject, count + 1);
    return {
      execution_id: executionId,
      entry_point: "checkout",
      outcome: effects.length ? "matched" : "no_match",
      matched_rules: [],
      effects,
      blocking: effects.some((effect) => (effect as { blocking: boolean }).blocking),
      duration_ms: 1,
      dry_run: false,
    };
  }

  function handle(call: Call): { status: number; body: unknown } {
    if (call.headers.Authorization !== "Api-Key vk_pk_test") {
      return { status: 401, body: { error: "not_authenticated" } };
    }
    const body = call.body as Record<string, unknown>;
    if (call.url === "/api/rules/engine/execute/") {
      return { status: 200, body: execute(body.context as CheckoutContext) };
    }
    if (call.url === "/api/rules/engine/acknowledgements/") {
      const subject = executions.get(String(body.execution_id));
      if (!subject) return { status: 404, body: { error: "not_found" } };
      acknowledged.add(`${subject}:${String(body.ack_key)}`);
      return { status: 201, body: { ack_key: body.ack_key, acknowledged: true, accepted_at: "now" } };
    }
    if (call.url === "/api/rules/engine/preferences/") {
      return { status: 200, body: { preference_key: body.preference_key, value: body.value } };
    }
    return { status: 404, body: { error: "not_found" } };
  }

  return { handle, contexts, acknowledged };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
