/**
 * Upload progress for forms marked `data-handover-upload`.
 *
 * Without this script such a form posts as usual. With it, the form is sent with XMLHttpRequest so
 * the page can show bytes sent, percentage and time left, and offer to cancel; the rest of the page
 * stays usable meanwhile. The upload endpoint answers 302 to the transfer page: XMLHttpRequest
 * follows it, and the script then navigates to `responseURL`, just as the plain form would have.
 * The `X-Handover-Upload` header tells the portal not to spend the page's messages ("… has been
 * uploaded") on that hidden request, so they show on the page the person sees.
 */

// Screen readers hear the progress at these points, not at every event (that would drown them).
const ANNOUNCE_AT_PERCENT = [25, 50, 75]

/** Enhance every upload form under `root`. */
export function enhanceUploadForms (root) {
  if (!window.FormData || !window.XMLHttpRequest) return
  root.querySelectorAll('form[data-handover-upload]').forEach((form) => new UploadForm(form))
}

/** Sizes as the portal shows them: decimal units, one decimal place. */
export function formatBytes (bytes) {
  const units = [['GB', 1e9], ['MB', 1e6], ['KB', 1e3]]
  for (const [unit, scale] of units) {
    if (bytes >= scale) return `${(bytes / scale).toFixed(1)} ${unit}`
  }
  return `${bytes} bytes`
}

/** "about 12 seconds left", "about 3 minutes left". */
export function formatTimeLeft (seconds) {
  if (!Number.isFinite(seconds)) return 'working out time left'
  if (seconds < 1.5) return 'about 1 second left'
  if (seconds < 90) return `about ${Math.round(seconds)} seconds left`
  const minutes = Math.round(seconds / 60)
  if (minutes < 90) return `about ${minutes} minutes left`
  return `about ${Math.round(minutes / 60)} hours left`
}

class UploadForm {
  constructor (form) {
    this.form = form
    this.fileInput = form.querySelector('input[type="file"]')
    this.submitButton = form.querySelector('button[type="submit"]')
    if (!this.fileInput || !this.submitButton) return
    this.xhr = null
    this.buildPanel()
    form.addEventListener('submit', (event) => this.onSubmit(event))
    window.addEventListener('beforeunload', (event) => {
      // Leaving the page would silently stop the upload: ask first.
      if (this.xhr) event.preventDefault()
    })
  }

  buildPanel () {
    const id = `${this.fileInput.id || 'file'}-progress`
    this.panel = element('div', { class: 'handover-upload-progress', id, hidden: '' })
    this.label = element('p', { class: 'govuk-body govuk-!-font-weight-bold govuk-!-margin-bottom-1', id: `${id}-label` })
    this.bar = element('progress', {
      class: 'handover-upload-progress__bar', max: '100', value: '0', 'aria-labelledby': `${id}-label`
    })
    this.status = element('p', { class: 'handover-upload-progress__status', id: `${id}-status` })
    this.cancelButton = element('button', {
      type: 'button', class: 'govuk-button govuk-button--secondary govuk-!-margin-bottom-0', 'data-module': 'govuk-button'
    })
    this.cancelButton.textContent = 'Cancel upload'
    this.cancelButton.addEventListener('click', () => this.xhr && this.xhr.abort())
    this.panel.append(this.label, this.bar, this.status, this.cancelButton)
    // The live region is in the page from the start (not inside the hidden panel) so that
    // screen readers notice what is later written into it.
    this.announcer = element('p', { class: 'govuk-visually-hidden', role: 'status', 'aria-live': 'polite' })
    this.submitButton.after(this.panel)
    this.form.append(this.announcer)
  }

  onSubmit (event) {
    if (this.xhr) {
      event.preventDefault() // already uploading
      return
    }
    const file = this.fileInput.files && this.fileInput.files[0]
    if (!file) return // the portal explains that a file must be chosen
    event.preventDefault()
    const xhr = new XMLHttpRequest()
    xhr.open('POST', this.form.action)
    xhr.setRequestHeader('X-Handover-Upload', '1')
    xhr.responseType = 'document'
    // The request is a little larger than the file (the form's other fields): the percentage and time
    // come from the request, the bytes shown from the file, as the person knows its size.
    xhr.upload.addEventListener('progress', (e) => this.onProgress(e.loaded, e.lengthComputable ? e.total : file.size, file.size))
    xhr.upload.addEventListener('load', () => this.onSent())
    xhr.addEventListener('load', () => this.onLoad())
    xhr.addEventListener('error', () => this.onFailed('The upload stopped. Check your connection and try again.'))
    xhr.addEventListener('abort', () => this.onCancelled())
    this.xhr = xhr
    this.started = performance.now()
    this.announced = new Set()
    this.label.textContent = `Uploading ${file.name}`
    this.bar.value = 0
    this.status.textContent = `0 bytes of ${formatBytes(file.size)} sent (0%)`
    this.status.classList.remove('govuk-error-message')
    this.bar.hidden = false
    this.cancelButton.hidden = false
    this.panel.hidden = false
    this.submitButton.setAttribute('aria-disabled', 'true')
    this.announce(`Uploading ${file.name}, ${formatBytes(file.size)}. You can cancel the upload.`)
    xhr.send(new FormData(this.form))
  }

  onProgress (loaded, total, fileSize) {
    const percent = total ? Math.floor((loaded / total) * 100) : 0
    const elapsed = (performance.now() - this.started) / 1000
    const rate = elapsed > 0 ? loaded / elapsed : 0
    const left = rate > 0 ? (total - loaded) / rate : Infinity
    const sent = Math.min(fileSize, Math.round((percent / 100) * fileSize))
    this.bar.value = percent
    this.status.textContent = `${formatBytes(sent)} of ${formatBytes(fileSize)} sent (${percent}%), ${formatTimeLeft(left)}`
    for (const point of ANNOUNCE_AT_PERCENT) {
      if (percent >= point && !this.announced.has(point)) {
        this.announced.add(point)
        this.announce(`${point}% uploaded, ${formatTimeLeft(left)}`)
      }
    }
  }

  onSent () {
    this.bar.value = 100
    this.status.textContent = 'All sent. Encrypting and storing the file…'
    this.cancelButton.hidden = true
    this.announce('All sent. Encrypting and storing the file.')
  }

  onLoad () {
    const xhr = this.xhr
    this.xhr = null
    if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL) {
      window.location.assign(xhr.responseURL) // the transfer page, with its "uploaded" message
      return
    }
    // The portal's error page says what went wrong: show its heading and explanation here.
    const page = xhr.response
    const heading = page && page.querySelector('main h1')
    const explanation = page && page.querySelector('main h1 ~ p')
    if (!heading) {
      this.onFailed('The upload did not work. Nothing was uploaded. Try again.')
    } else if (explanation) {
      this.onFailed(`${heading.textContent.trim()}. ${explanation.textContent.trim()}`)
    } else {
      this.onFailed(`${heading.textContent.trim()}. Nothing was uploaded.`)
    }
  }

  onFailed (message) {
    this.xhr = null
    this.finish(message, { failed: true })
  }

  onCancelled () {
    this.xhr = null
    this.finish('Upload cancelled. Nothing was uploaded.')
  }

  finish (message, { failed = false } = {}) {
    this.label.textContent = this.fileInput.files && this.fileInput.files[0] ? this.fileInput.files[0].name : ''
    this.bar.hidden = true
    this.cancelButton.hidden = true
    this.status.textContent = message
    this.status.classList.toggle('govuk-error-message', failed)
    this.submitButton.removeAttribute('aria-disabled')
    this.announce(message)
    // The Cancel button the person may have used is gone: put them back where they choose a file.
    this.fileInput.focus()
  }

  announce (message) {
    this.announcer.textContent = message
  }
}

function element (name, attributes) {
  const el = document.createElement(name)
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, value)
  return el
}
