// The embedded topology's link: the edge calls the router directly, in the same process.
// It exists as its own module so the edge depends on RouterLink, never on Router.
import type { RouterLink } from "./link.js";
import { Router } from "./router.js";

export function createLocalLink(router: Router = new Router()): { link: RouterLink; router: Router } {
  return { link: router, router };
}
