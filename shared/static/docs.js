// Starts Swagger UI on /api/docs. The page's Content-Security-Policy allows no inline script, so the
// settings arrive as data attributes of the mount point, written by the server.
(function () {
  "use strict";
  var mount = document.getElementById("swagger-ui");
  var settings = mount.dataset;
  var ui = SwaggerUIBundle({
    url: settings.openapiUrl,
    domNode: mount,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    displayOperationId: true,
    displayRequestDuration: true,
    filter: true,
    // A pasted token lives only as long as the page: never in localStorage, where any script of
    // this origin (or anyone at the keyboard later) could read it back.
    persistAuthorization: false,
    // Never send the document to the public validator service: the page must work offline.
    validatorUrl: null,
    oauth2RedirectUrl: new URL(settings.oauth2RedirectUrl, window.location.href).href,
  });
  ui.initOAuth({
    clientId: settings.oauthClientId,
    scopes: settings.oauthScopes,
    usePkceWithAuthorizationCodeGrant: true,
  });
})();
