// A plain rendering of openapi.json: one box per operation, its parameters and replies.
"use strict";
const cell = (text, tag = "td") => Object.assign(document.createElement(tag), { textContent: text });
const schemaName = (s) => !s ? "" : s.$ref ? s.$ref.split("/").pop()
  : s.type === "array" ? `array of ${schemaName(s.items)}` : (s.anyOf || []).map(schemaName).join(" or ") || s.type || "";
function row(...cells) { const tr = document.createElement("tr"); tr.append(...cells.map((c) => cell(c))); return tr; }
fetch("openapi.json").then((r) => r.json()).then((spec) => {
  document.getElementById("intro").textContent = spec.info.description;
  const list = document.getElementById("operations");
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const box = document.createElement("section");
      box.className = "op";
      box.dataset.operation = op.operationId;
      const title = document.createElement("h3");
      title.append(cell(method.toUpperCase(), "span"), cell(path, "span"), cell(` ${op.summary || ""}`, "span"));
      title.children[0].className = "method";
      title.children[1].className = "path";
      box.append(title);
      if (op.description) box.append(cell(op.description, "p"));
      const table = document.createElement("table");
      table.append(row("in", "name", "type", "notes"));
      for (const p of op.parameters || []) {
        const param = p.$ref ? spec.components.parameters[p.$ref.split("/").pop()] : p;
        table.append(row(param.in, param.name, schemaName(param.schema), (param.required ? "required. " : "") + (param.description || "")));
      }
      const body = op.requestBody && op.requestBody.content["application/json"];
      if (body) table.append(row("body", "", schemaName(body.schema), op.requestBody.required ? "required" : "optional"));
      for (const [status, reply] of Object.entries(op.responses)) {
        const r = reply.$ref ? spec.components.responses[reply.$ref.split("/").pop()] : reply;
        const content = r.content && r.content["application/json"];
        table.append(row("reply", status, content ? schemaName(content.schema) : "", r.description || ""));
      }
      box.append(table);
      list.append(box);
    }
  }
}).catch((e) => { document.getElementById("intro").textContent = `Cannot load openapi.json: ${e}`; });
