import { BuilderPage } from "./builder/BuilderPage";
import { CheckoutPage } from "./checkout/CheckoutPage";
import type { VerdictConfig } from "./config";
import { PlaygroundPage } from "./playground/PlaygroundPage";

export type Route = "checkout" | "playground" | "builder" | "not-found";

/** `/app/`, `/app/playground`, `/app/builder` (trailing slashes ignored). */
export function routeFor(pathname: string): Route {
  const path = pathname.replace(/\/+$/, "");
  if (path === "/app" || path === "" || path === "/app/index.html") return "checkout";
  if (path === "/app/playground") return "playground";
  if (path === "/app/builder") return "builder";
  return "not-found";
}

const LINKS: { route: Route; href: string; label: string }[] = [
  { route: "checkout", href: "/app/", label: "Checkout demo" },
  { route: "playground", href: "/app/playground", label: "Playground" },
  { route: "builder", href: "/app/builder", label: "Builder" },
];

export function App({ config, pathname }: { config: VerdictConfig; pathname: string }) {
  const route = routeFor(pathname);
  return (
    <>
      <header className="site-header">
        <a className="brand" href="/app/">
          Verdict
        </a>
        <nav aria-label="Pages">
          <ul>
            {LINKS.map((link) => (
              <li key={link.route}>
                <a href={link.href} aria-current={link.route === route ? "page" : undefined}>
                  {link.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span className="user">
          {config.user ? `Signed in as ${config.user.username}` : ""}
        </span>
      </header>
      {route === "checkout" ? <CheckoutPage config={config} /> : null}
      {route === "playground" ? <PlaygroundPage config={config} /> : null}
      {route === "builder" ? <BuilderPage config={config} /> : null}
      {route === "not-found" ? (
        <main className="page">
          <h1>Not found</h1>
          <p>
            There is no page at this address. Try the <a href="/app/">checkout demo</a>.
          </p>
        </main>
      ) : null}
    </>
  );
}
