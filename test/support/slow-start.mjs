// NODE_OPTIONS=--import=<this file>: holds the loading of @oclif/core for 2 s, so a test can send
// a signal to an `elastic` process that has started its JavaScript but not yet its command
// (the window in which a daemon used to die of a SIGHUP). Test instrumentation only.
import { register } from 'node:module';

const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === '@oclif/core') await new Promise((r) => setTimeout(r, 2000));
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
