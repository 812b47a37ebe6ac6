import { useMemo, useState } from "react";
import { type Api, createApi } from "../api";
import type { VerdictConfig } from "../config";
import { ErrorMessage } from "../ErrorMessage";
import { Effects, type UserAcknowledgeEffect, useDecision } from "../effects";
import {
  BOOK,
  COUNTRIES,
  WINE,
  addProduct,
  cartTotal,
  checkoutContext,
  formatMoney,
  initialCart,
  removeLine,
} from "./cart";

export interface CheckoutPageProps {
  config: VerdictConfig;
  /** Injected by tests; otherwise a publishable-key client for `config`. */
  api?: Api;
  debounceMs?: number;
}

/**
 * The demo checkout: every cart or country change asks the `checkout` entry point again, and
 * Pay stays disabled until the server's current decision is not blocking.
 */
export function CheckoutPage({ config, api: injected, debounceMs = 250 }: CheckoutPageProps) {
  const api = useMemo(() => injected ?? createApi(config, "key"), [injected, config]);
  const [cart, setCart] = useState(initialCart);
  const [country, setCountry] = useState("DE");
  const [order, setOrder] = useState<{ total: number; executionId: string | null } | null>(null);
  const [paying, setPaying] = useState(false);
  const context = useMemo(() => checkoutContext(cart, country), [cart, country]);
  const { decision, loading, error, current, refresh } = useDecision("checkout", context, {
    api,
    debounceMs,
  });

  const blockers = (decision?.effects ?? []).filter(
    (effect): effect is UserAcknowledgeEffect => effect.blocking,
  );
  let blockedReason: string | null = null;
  if (error) blockedReason = "The order could not be checked. Please try again.";
  else if (!current) blockedReason = "Checking your order…";
  else if (decision?.blocking) {
    const titles = blockers.map((effect) => effect.title).filter(Boolean);
    blockedReason = titles.length
      ? `Please complete first: ${titles.join(", ")}.`
      : "The order cannot be placed yet.";
  }
  const canPay = blockedReason === null && !paying && order === null;

  function changeCart(next: typeof cart) {
    setOrder(null);
    setCart(next);
  }

  async function pay() {
    setPaying(true);
    try {
      // The server is the authority: ask once more right before placing the order.
      const latest = await refresh();
      if (latest && !latest.blocking) setOrder({ total: cartTotal(cart), executionId: latest.execution_id });
    } finally {
      setPaying(false);
    }
  }

  return (
    <main data-testid="checkout-page" className="page checkout">
      <h1>Checkout</h1>
      {!config.publishableKey ? (
        <p className="notice" role="note">
          No publishable API key is configured for this page; decisions will fail.
        </p>
      ) : null}
      <div className="checkout-grid">
        <section aria-labelledby="cart-title" className="card">
          <h2 id="cart-title">Your cart</h2>
          {cart.length === 0 ? <p className="muted">Your cart is empty.</p> : null}
          <ul className="cart-items">
            {cart.map((item) => (
              <li key={item.sku} data-testid="cart-item" data-sku={item.sku} className="cart-item">
                <span className="cart-item-name">
                  {item.name} <small className="muted">({item.category})</small>
                </span>
                <span className="cart-item-qty">× {item.quantity}</span>
                <span className="cart-item-price">{formatMoney(item.price * item.quantity)}</span>
                <button
                  type="button"
                  className="link-button"
                  aria-label={`Remove ${item.name}`}
                  onClick={() => changeCart(removeLine(cart, item.sku))}
                >
                  Remove
                </button>
              </li>
            ))}
          </ul>
          <p className="cart-total">
            Total: <strong data-testid="cart-total">{formatMoney(cartTotal(cart))}</strong>
          </p>
          <div className="button-row">
            <button
              type="button"
              className="button secondary"
              data-testid="add-item-wine"
              onClick={() => changeCart(addProduct(cart, WINE))}
            >
              Add a bottle of wine ({formatMoney(WINE.price)})
            </button>
            <button
              type="button"
              className="button secondary"
              data-testid="add-item-book"
              onClick={() => changeCart(addProduct(cart, BOOK))}
            >
              Add a book ({formatMoney(BOOK.price)})
            </button>
          </div>
          <label className="field">
            Shipping country
            <select
              data-testid="country-select"
              value={country}
              onChange={(event) => {
                setOrder(null);
                setCountry(event.target.value);
              }}
            >
              {COUNTRIES.map((item) => (
                <option key={item.code} value={item.code}>
                  {item.code} — {item.name}
                </option>
              ))}
            </select>
          </label>
        </section>

        <section aria-labelledby="decision-title" className="card">
          <h2 id="decision-title">Before you pay</h2>
          <p className="muted" aria-live="polite">
            {loading ? "Checking your order…" : "\u00a0"}
          </p>
          {error ? <ErrorMessage error={error} /> : null}
          <Effects decision={decision} api={api} onRefresh={refresh} />
          <div className="pay">
            <button
              type="button"
              data-testid="pay-button"
              className="button primary large"
              disabled={!canPay}
              aria-describedby={blockedReason ? "pay-blocked-reason" : undefined}
              onClick={() => void pay()}
            >
              Pay {formatMoney(cartTotal(cart))}
            </button>
            {blockedReason && order === null ? (
              <p id="pay-blocked-reason" data-testid="pay-blocked-reason" className="pay-blocked">
                {blockedReason}
              </p>
            ) : null}
            {order ? (
              <p data-testid="order-placed" className="order-placed" role="status">
                Order placed: {formatMoney(order.total)}. Thank you!
              </p>
            ) : null}
          </div>
        </section>
      </div>
    </main>
  );
}
