/**
 * What a person does in Thunderbird, done through its own privileged APIs over Marionette:
 * import the device's .p12 into the profile's certificate store (Thunderbird's bundled
 * NSS), accept the gateway's self-signed TLS certificate (the override "Confirm Security
 * Exception" makes), add the IMAP account, and open a message in a message tab, reading
 * back what the tab shows: the body text, the attachment list and the S/MIME status.
 */
import { waitFor } from './gateway-process.js';
import type { Marionette } from './thunderbird-marionette.js';

export interface ImportedKey {
  nickname: string;
  dbKey: string;
  subject: string;
}

/** Imports the .p12 with its password; fails with NSS's error code if NSS refuses it. */
export async function importP12(
  tb: Marionette,
  file: string,
  password: string,
): Promise<ImportedKey> {
  return tb.execute<ImportedKey>(
    `
    const [path, password] = arguments;
    const certdb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
    const file = Cc["@mozilla.org/file/local;1"].createInstance(Ci.nsIFile);
    file.initWithPath(path);
    const code = certdb.importPKCS12File(file, password);
    if (code !== Ci.nsIX509CertDB.Success) throw new Error("importPKCS12File: error " + code);
    const mine = certdb.getCerts().filter(c => c.certType === Ci.nsIX509Cert.USER_CERT);
    if (mine.length !== 1) throw new Error("expected one personal certificate, have " + mine.length);
    return { nickname: mine[0].displayName, dbKey: mine[0].dbKey, subject: mine[0].subjectName };
    `,
    [file, password],
  );
}

/**
 * NSS's verdict on the imported certificate as a mail recipient's, now, checked the way
 * Account Settings → End-To-End Encryption checks the certificate chosen there
 * (am-e2e.js): '' when it verifies, else NSS's error name (SEC_ERROR_UNKNOWN_ISSUER is
 * the "unknown issuer" it shows).
 */
export async function verifyForMail(tb: Marionette, key: ImportedKey): Promise<string> {
  return tb.execute<string>(
    `
    const [dbKey] = arguments;
    const certdb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
    const cert = certdb.findCertByDBKey(dbKey);
    const code = await new Promise(resolve =>
      certdb.asyncVerifyCertAtTime(cert, Ci.nsIX509CertDB.verifyUsageEmailRecipient, 0, "",
        Math.floor(Date.now() / 1000), [], { verifyCertFinished: resolve }));
    if (code === 0) return "";
    const errors = Cc["@mozilla.org/nss_errors_service;1"].getService(Ci.nsINSSErrorsService);
    return errors.isNSSErrorCode(code)
      ? errors.getErrorName(errors.getXPCOMFromNSSError(code))
      : "PR error " + code;
    `,
    [key.dbKey],
  );
}

/**
 * The one step docs/clients.md gives: the issuer of the imported certificate (the owner CA
 * the .p12 carried) → Edit Trust → "This certificate can identify mail users" (NSS's
 * email trust, nothing else). Returns the CA's common name (the owner fingerprint).
 */
export async function trustIssuerForMail(tb: Marionette, key: ImportedKey): Promise<string> {
  return tb.execute<string>(
    `
    const [dbKey] = arguments;
    const certdb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
    const cert = certdb.findCertByDBKey(dbKey);
    const issuers = certdb.getCerts().filter(
      c => c.subjectName === cert.issuerName && c.certType === Ci.nsIX509Cert.CA_CERT);
    if (issuers.length !== 1) throw new Error("expected the owner CA from the .p12, found " + issuers.length);
    certdb.setCertTrust(issuers[0], Ci.nsIX509Cert.CA_CERT, Ci.nsIX509CertDB.TRUSTED_EMAIL);
    return issuers[0].commonName;
    `,
    [key.dbKey],
  );
}

/** Remembers a permanent override for the gateway's self-signed certificate on host:port. */
export async function trustServerCertificate(
  tb: Marionette,
  pem: string,
  host: string,
  port: number,
): Promise<void> {
  const base64 = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  await tb.execute(
    `
    const [base64, host, port] = arguments;
    const certdb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
    const cert = certdb.constructX509FromBase64(base64);
    Cc["@mozilla.org/security/certoverride;1"]
      .getService(Ci.nsICertOverrideService)
      .rememberValidityOverride(host, port, {}, cert, false);
    `,
    [base64, host, port],
  );
}

export interface ImapAccount {
  address: string;
  host: string;
  port: number;
  password: string;
  /** The imported device certificate, set as the identity's S/MIME encryption certificate. */
  certificate: ImportedKey;
}

/**
 * Adds the IMAP account (TLS, normal password) with its password in memory, so no prompt
 * opens. Whole messages are fetched on demand only: no offline copies, so that opening a
 * message is what fetches it.
 */
export async function addImapAccount(tb: Marionette, account: ImapAccount): Promise<void> {
  await tb.execute(
    `
    const [a] = arguments;
    const server = MailServices.accounts.createIncomingServer(a.address, a.host, "imap");
    server.port = a.port;
    server.socketType = Ci.nsMsgSocketType.SSL;
    server.authMethod = Ci.nsMsgAuthMethod.passwordCleartext;
    server.offlineDownload = false;
    server.setBoolValue("autosync_offline_stores", false);
    server.password = a.password;
    const identity = MailServices.accounts.createIdentity();
    identity.email = a.address;
    identity.fullName = a.address;
    identity.setUnicharAttribute("encryption_cert_name", a.certificate.nickname);
    identity.setCharAttribute("encryption_cert_dbkey", a.certificate.dbKey);
    const account = MailServices.accounts.createAccount();
    account.addIdentity(identity);
    account.incomingServer = server;
    MailServices.accounts.defaultAccount = account;
    `,
    [account],
  );
}

export interface ListedMessage {
  subject: string;
  uri: string;
  size: number;
}

/**
 * Lists the account's INBOX as Thunderbird's database holds it; with `update`, first asks
 * Thunderbird to check the server for new mail (it does so in the background, so the
 * caller polls). Shows the INBOX in the first tab, as a person would see it.
 */
export async function listInbox(
  tb: Marionette,
  address: string,
  update: boolean,
): Promise<ListedMessage[]> {
  return tb.execute<ListedMessage[]>(
    `
    const [address, update] = arguments;
    const account = MailServices.accounts.accounts.find(
      a => a.incomingServer.type === "imap" && a.incomingServer.username === address);
    const inbox = account.incomingServer.rootFolder.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
    if (!inbox) throw new Error("the IMAP account has no INBOX folder");
    if (update) {
      inbox.updateFolder(null);
      const tabmail = document.getElementById("tabmail");
      tabmail.switchToTab(0);
      if (tabmail.currentAbout3Pane.gFolder !== inbox) tabmail.currentAbout3Pane.displayFolder(inbox);
    }
    return [...inbox.messages].map(h => ({
      subject: h.mime2DecodedSubject,
      uri: inbox.getUriForMsg(h),
      size: h.messageSize,
    }));
    `,
    [address, update],
  );
}

export interface DisplayedMessage {
  /** NSS's result for the envelope: 0 is success (nsICMSMessageErrors.SUCCESS). */
  encryptionStatus: number;
  /** The header's crypto box: its technology label and the encrypted icon's state. */
  tech: string | null;
  encryptedIcon: string | null;
  /** The message pane's text; null when it shows a page the chrome cannot read. */
  body: string | null;
  /** What the message pane shows (a message URI, or Thunderbird's error page). */
  pane: string | null;
  /** Each attachment with the SHA-256 of the bytes "Save attachment" would write. */
  attachments: { name: string; contentType: string; sha256: string | null }[];
}

/**
 * Opens `uri` (a message URI, or a file URL of an .eml with the display query) in a
 * message tab of its own and waits until Thunderbird has loaded it and finished its
 * S/MIME processing (its own `smimeprocessed` signal), then reads what the tab shows.
 */
export async function openMessage(
  tb: Marionette,
  uri: string,
  { digests }: { digests: boolean },
): Promise<DisplayedMessage> {
  await tb.execute(
    `
    const [uri] = arguments;
    document.getElementById("tabmail").openTab("mailMessageTab", { messageURI: uri, background: false });
    `,
    [uri],
  );
  // Polled from here rather than inside Thunderbird, so that a message that never
  // finishes loading fails with what the tab showed at the time.
  let last: unknown;
  await waitFor(
    'Thunderbird to display the message',
    async () => {
      const state = await tb.execute<{ done: boolean }>(`
        const win = document.getElementById("tabmail").tabInfo.at(-1).chromeBrowser.contentWindow;
        if (win?.location.href !== "about:message" || win.document.readyState !== "complete") {
          return { done: false, page: win?.location.href ?? null };
        }
        const pane = win.getMessagePaneBrowser();
        const doc = pane.contentDocument;
        const paneUri = pane.currentURI?.spec ?? null;
        const shown = !pane.webProgress?.isLoadingDocument && paneUri !== "about:blank";
        return {
          // Decrypted: Thunderbird's own "S/MIME processing done" signal, page loaded. Not
          // decrypted: NSS's error status is set and the error page shown (no MsgLoaded,
          // so no smimeprocessed, follows it).
          done: (win.gSmimeProcessedDispatched && doc?.readyState === "complete" && !!doc.body) ||
            (win.gEncryptionStatus > 0 && shown),
          msgLoaded: win.gSmimeMsgLoadedFired,
          encryptionStatus: win.gEncryptionStatus,
          pane: paneUri?.slice(0, 120),
          paneLoading: pane.webProgress?.isLoadingDocument,
          status: document.getElementById("statusText")?.textContent ?? null,
        };
      `);
      last = state;
      return state.done;
    },
    45_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; the tab showed ${JSON.stringify(last)}`);
  });
  return tb.execute<DisplayedMessage>(
    `
    const [digests] = arguments;
    const about = document.getElementById("tabmail").tabInfo.at(-1).chromeBrowser.contentWindow;
    // Two frames, so that what the test reads has been painted for its screenshot.
    await new Promise(r => window.requestAnimationFrame(() => window.requestAnimationFrame(r)));
    const doc = about.document;
    const box = doc.getElementById("cryptoBox");
    const icon = doc.getElementById("encryptedHdrIcon");
    return {
      encryptionStatus: about.gEncryptionStatus,
      tech: box.hidden ? null : box.getAttribute("tech"),
      encryptedIcon: icon.hidden ? null : icon.getAttribute("src"),
      body: about.getMessagePaneBrowser().contentDocument?.body?.innerText ?? null,
      pane: about.getMessagePaneBrowser().currentURI?.spec ?? null,
      attachments: await Promise.all(about.currentAttachments.map(async a => ({
        name: a.name,
        contentType: a.contentType,
        sha256: digests
          ? Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", await a.fetchAttachment())),
              b => b.toString(16).padStart(2, "0")).join("")
          : null,
      }))),
    };
    `,
    [digests],
  );
}

/**
 * Has Thunderbird's folder discovery seen the INBOX on the server (LIST answered, so its
 * hierarchy delimiter is known)? Until then it names the folder with the placeholder
 * delimiter "^" (fetch>UID>^INBOX>1), and a message opened then is displayed without its
 * header pane ever loading: no S/MIME status, no attachments.
 */
async function inboxDiscovered(tb: Marionette, address: string): Promise<boolean> {
  return tb.execute<boolean>(
    `
    const [address] = arguments;
    const account = MailServices.accounts.accounts.find(
      a => a.incomingServer.type === "imap" && a.incomingServer.username === address);
    const inbox = account?.incomingServer.rootFolder.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
    if (!inbox) return false;
    const imap = inbox.QueryInterface(Ci.nsIMsgImapMailFolder);
    return imap.verifiedAsOnlineFolder && imap.hierarchyDelimiter !== "^";
    `,
    [address],
  );
}

/**
 * Polls the INBOX (asking for an update every few seconds) until it lists `count` messages
 * and Thunderbird's folder discovery has seen it, so that opening a message is the same
 * every run.
 */
export async function waitForInbox(
  tb: Marionette,
  address: string,
  count: number,
): Promise<ListedMessage[]> {
  let listed: ListedMessage[] = [];
  let polls = 0;
  await waitFor(`${count} messages in Thunderbird's INBOX, its folder discovered`, async () => {
    listed = await listInbox(tb, address, polls++ % 25 === 0);
    return listed.length >= count && (await inboxDiscovered(tb, address));
  });
  return listed;
}

/** Closes every tab but the first (the folder view). */
export async function closeMessageTabs(tb: Marionette): Promise<void> {
  await tb.execute(`
    const tabmail = document.getElementById("tabmail");
    for (const tab of [...tabmail.tabInfo].slice(1)) tabmail.closeTab(tab);
  `);
}
