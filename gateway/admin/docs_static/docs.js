// The admin API's reference page: reads /admin/openapi.json (same origin) and lays it out.
// Written for this gateway (no third-party code, nothing fetched from elsewhere); every value
// goes in through textContent, never as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

function typeOf(schema) {
  if (!schema) return "any";
  if (schema.$ref) return el("a", { href: "#schema-" + refName(schema.$ref) }, refName(schema.$ref));
  if (schema.anyOf) {
    const span = el("span");
    schema.anyOf.forEach((part, i) => {
      if (i) span.append(" | ");
      span.append(typeOf(part));
    });
    return span;
  }
  if (schema.type === "array") {
    return el("span", {}, "array of ", typeOf(schema.items));
  }
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  let text = schema.type || "any";
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    text += ` (${schema.minimum ?? schema.exclusiveMinimum ?? ""}..${schema.maximum ?? ""})`;
  }
  return text;
}

function schemaTable(schema) {
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const rows = Object.entries(props).map(([name, prop]) =>
    el("tr", {},
      el("td", { class: "name" }, name, required.has(name) ? " *" : ""),
      el("td", {}, typeOf(prop)),
      el("td", {}, prop.description || prop.title || "",
        prop.examples ? el("code", {}, " e.g. " + JSON.stringify(prop.examples[0])) : null)));
  if (!rows.length) return el("p", {}, typeOf(schema));
  return el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "")), ...rows);
}

function operation(method, path, op) {
  const section = el("section", { class: "op", id: op.operationId },
    el("h3", {}, el("span", { class: "method " + method }, method.toUpperCase()), " ", el("code", {}, path)),
    el("p", {}, op.description || op.summary || ""));
  const params = op.parameters || [];
  if (params.length) {
    section.append(el("h4", {}, "Parameters"), el("table", {},
      ...params.map((p) => el("tr", {},
        el("td", { class: "name" }, p.name, p.required ? " *" : ""),
        el("td", {}, p.in), el("td", {}, typeOf(p.schema)), el("td", {}, p.description || "")))));
  }
  if (op.requestBody) {
    const content = op.requestBody.content;
    const media = Object.keys(content);
    section.append(el("h4", {}, "Body (" + media.join(", ") + ")"), el("p", {}, typeOf(content[media[0]].schema)));
    if (content[media[0]].example) section.append(el("pre", {}, JSON.stringify(content[media[0]].example, null, 2)));
  }
  section.append(el("h4", {}, "Answers"));
  const rows = Object.entries(op.responses).map(([status, answer]) => {
    const content = answer.content || {};
    const media = Object.keys(content)[0];
    return el("tr", {}, el("td", { class: "status s" + status[0] }, status),
      el("td", {}, media ? typeOf(content[media].schema) : ""),
      el("td", {}, answer.description || "", answer.headers ? " (ETag)" : ""));
  });
  section.append(el("table", {}, ...rows));
  return section;
}

async function main() {
  const root = document.getElementById("reference");
  const answer = await fetch(root.dataset.document, { headers: { Accept: "application/json" } });
  const doc = await answer.json();
  root.append(el("h1", {}, doc.info.title + " " + doc.info.version), el("p", {}, doc.info.description));
  const byTag = new Map();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags || ["admin"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(method, path, op));
    }
  }
  const nav = el("nav", {});
  for (const [tag, ops] of byTag) {
    nav.append(el("a", { href: "#tag-" + tag }, tag), " ");
    root.append(el("h2", { id: "tag-" + tag }, tag), ...ops);
  }
  root.insertBefore(nav, root.children[2]);
  root.append(el("h2", { id: "schemas" }, "Schemas"));
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    root.append(el("section", { class: "schema", id: "schema-" + name },
      el("h3", {}, name), el("p", {}, schema.description || ""), schemaTable(schema)));
  }
}

main().catch((error) => {
  document.getElementById("reference").append(el("p", { class: "error" }, "Could not read the document: " + error));
});
