import { pipeline } from "@harmont/hm";
import { rust } from "@harmont/hm/toolchains";

// Python returns the project itself, which stands for test, clippy and fmt.
export default { slug: "rust-default", pipeline: pipeline(rust.project().ci()) };
