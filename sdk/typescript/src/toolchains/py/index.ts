export { uv, UvProject, type UvOptions } from "./uv.ts";
