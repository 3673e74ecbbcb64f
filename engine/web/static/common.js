// Shared by the pages: who the page is (appId and secret, kept in this tab's session) and small helpers.
"use strict";
const ipcc = {
  session() {
    const params = new URLSearchParams(location.search);
    for (const name of ["appId", "secret"]) {
      if (params.get(name) !== null) sessionStorage.setItem("ipcc." + name, params.get(name));
    }
    return {appId: sessionStorage.getItem("ipcc.appId") || "", secret: sessionStorage.getItem("ipcc.secret") || ""};
  },
  query(extra) {
    const s = ipcc.session();
    return new URLSearchParams(Object.assign({appId: s.appId, secret: s.secret}, extra || {})).toString();
  },
  el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  },
  describeEvent(at, event) {
    const fields = ["dtmfCode", "endReason", "result"].filter((k) => event[k] !== undefined)
      .map((k) => `${k}=${event[k]}`).join(" ");
    return `${at === null ? "" : at.toFixed(2) + " s  "}${event.event} ${fields}`;
  },
};
