import { test } from "node:test";
import assert from "node:assert/strict";
import { slugify } from "../slugify.js";

test("lower-cases and joins words with dashes", () => {
  assert.equal(slugify("Hello, World!"), "hello-world");
});

test("trims leading and trailing separators", () => {
  assert.equal(slugify("  --pyro--  "), "pyro");
});
