// Handover's scripts, loaded as an ES module with the page's CSP nonce. Every page works without them:
// they add GOV.UK Frontend's behaviours (error summary focus, menu toggle, skip link) and upload progress.
import { initAll } from '../build/govuk-frontend.min.js'
import { enhanceUploadForms } from './upload-progress.js'

initAll()
enhanceUploadForms(document)
