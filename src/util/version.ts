// The build injects BERTH_VERSION (build/build.mjs); tests run from source without it.
declare const BERTH_VERSION: string | undefined;
export const VERSION: string = typeof BERTH_VERSION === 'string' ? BERTH_VERSION : '0.0.0-dev';
/** Docker Engine API versions this daemon speaks. */
export const API_VERSION = '1.47';
export const MIN_API_VERSION = '1.24';
