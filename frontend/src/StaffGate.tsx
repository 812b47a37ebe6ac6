import type { ReactNode } from "react";
import type { VerdictConfig } from "./config";

export interface StaffGateProps {
  config: VerdictConfig;
  children: ReactNode;
}

/** Staff pages: show a login link instead of the page to anonymous or non-staff users. */
export function StaffGate({ config, children }: StaffGateProps) {
  if (config.user?.isStaff) return <>{children}</>;
  // Django builds loginUrl for the page being served (`?next=` is this page, query included).
  const loginUrl = config.loginUrl;
  return (
    <div className="card gate">
      <p>
        {config.user
          ? `You are logged in as ${config.user.username}, which is not a staff account.`
          : "This page is for rule authors."}
      </p>
      <p>
        <a data-testid="login-link" className="button primary" href={loginUrl}>
          Log in as staff
        </a>
      </p>
    </div>
  );
}
