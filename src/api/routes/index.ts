// Every route module, registered in one place. A new module adds one line here; a new
// route in an existing module needs nothing here.
import { Router } from '../router';
import { registerSystemRoutes } from './system';
import { registerImageRoutes } from './images';
import { registerContainerRoutes } from './containers';
import { registerExecRoutes } from './exec';
import { registerEventRoutes } from './events';
import { registerNetworkRoutes } from './networks';
import { registerArchiveRoutes } from './archive';
import { registerVolumeRoutes } from './volumes';

export const ROUTE_MODULES: ReadonlyArray<(router: Router) => void> = [
  registerSystemRoutes,
  registerImageRoutes,
  registerContainerRoutes,
  registerExecRoutes,
  registerEventRoutes,
  registerNetworkRoutes,
  registerArchiveRoutes,
  registerVolumeRoutes,
];

export function buildRouter(modules: ReadonlyArray<(router: Router) => void> = ROUTE_MODULES): Router {
  const router = new Router();
  for (const register of modules) register(router);
  return router;
}
