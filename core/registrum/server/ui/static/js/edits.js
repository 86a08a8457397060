// The description and tags of a run, a model or a model version, for those who may change
// them: a text box and "Save description", a key, a value and "Set tag", and "remove KEY"
// for each tag. Ids and classes are named after `prefix` (`run-description`,
// `save-run-description`, `run-tag-key`, `run-tag-value`, `set-run-tag`, `remove-run-tag`).
// An action that worked re-renders the page with a notice; one that failed says why in
// `status` and gives its button back.

import { api } from "./api.js";
import { rerender } from "./app.js";
import { act, h } from "./dom.js";

export function describeAndTag(record, { prefix, path, tagsPath = path, status }) {
  const done = (message) => () => rerender(message);
  const description = h("textarea", { id: `${prefix}-description`, rows: 2, cols: 60 }, record.description || "");
  const save = h("button", { type: "button", id: `save-${prefix}-description`, onclick: () => act(save, status,
    () => api(path, { method: "PATCH", body: { description: description.value } }), done("Description saved.")) },
  "Save description");
  const key = h("input", { id: `${prefix}-tag-key`, placeholder: "key", size: 14 });
  const value = h("input", { id: `${prefix}-tag-value`, placeholder: "value", size: 18 });
  const setTag = h("button", { type: "button", id: `set-${prefix}-tag`, onclick: () => act(setTag, status,
    () => api(tagsPath, { method: "PATCH", body: { tags: { [key.value]: value.value } } }), done(`Tag ${key.value} set.`)) },
  "Set tag");
  const removers = Object.keys(record.tags || {}).sort().map((k) => {
    const b = h("button", { type: "button", class: `link remove-${prefix}-tag`, dataset: { tag: k }, onclick: () => act(b, status,
      () => api(`${path}/tags/${encodeURIComponent(k)}`, { method: "DELETE" }), done(`Tag ${k} removed.`)) }, `remove ${k}`);
    return b;
  });
  return [
    h("div", { class: "edit-description" }, description, " ", save),
    h("div", { class: "edit-tags" }, key, " ", value, " ", setTag, " ", removers),
  ];
}
