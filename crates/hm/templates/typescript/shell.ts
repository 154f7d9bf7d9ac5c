/** CI for this project: `hm run` runs it on your machine. */
import { pipeline, sh, type PipelineDefinition } from "@harmont/hm";

// "host" runs the steps on this machine's own root filesystem (read-only,
// under a writable layer). For a clean system, import an image with
// `hm image import ubuntu:24.04 ROOTFS` and write image: "ubuntu:24.04".
const build = sh("echo build && ls", { label: "build", image: "host" });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    pipeline: pipeline([build.sh("echo test", { label: "test" })]),
  },
];

export default pipelines;
