import { rust } from "@harmont/hm";

export default {
  slug: "rust-default",
  pipeline: rust.project(),
};
