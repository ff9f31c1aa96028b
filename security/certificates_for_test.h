// Test certificates made in memory with OpenSSL: a CA and certificates it signs, with any
// name and validity window (an expired one too), written as PEM files for the gRPC
// credentials under test. deploy/make_certs.sh makes the real ones.
#ifndef MOBILENET_SECURITY_CERTIFICATES_FOR_TEST_H_
#define MOBILENET_SECURITY_CERTIFICATES_FOR_TEST_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "common/check.h"

namespace mobilenet {

struct PemPair {
  std::string certificate;
  std::string key;
};

namespace certificates_internal {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* x509) const { X509_free(x509); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Certificate = std::unique_ptr<X509, X509Free>;

inline std::string ToPem(X509* certificate) {
  BIO* bio = BIO_new(BIO_s_mem());
  MOBILENET_CHECK(PEM_write_bio_X509(bio, certificate) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, size);
  BIO_free(bio);
  return pem;
}

inline std::string ToPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  MOBILENET_CHECK(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, size);
  BIO_free(bio);
  return pem;
}

inline void AddExtension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  MOBILENET_CHECK(extension != nullptr);
  MOBILENET_CHECK(X509_add_ext(certificate, extension, -1) == 1);
  X509_EXTENSION_free(extension);
}

}  // namespace certificates_internal

// A certificate authority that signs certificates on demand.
class TestCertificateAuthority {
 public:
  explicit TestCertificateAuthority(const std::string& name = "test cluster CA") {
    using namespace certificates_internal;
    key_.reset(EVP_EC_gen("P-256"));
    MOBILENET_CHECK(key_ != nullptr);
    certificate_ = Make(name, key_.get(), nullptr, nullptr, -3600, 86400, true);
  }

  std::string certificate_pem() const { return certificates_internal::ToPem(certificate_.get()); }

  // A key and a certificate signed by this CA whose subject alternative name (DNS) and
  // common name are `name`, valid from now + not_before_seconds to now +
  // not_after_seconds.
  PemPair Issue(const std::string& name, int64_t not_before_seconds = -3600,
                int64_t not_after_seconds = 86400) {
    using namespace certificates_internal;
    Key key(EVP_EC_gen("P-256"));
    MOBILENET_CHECK(key != nullptr);
    Certificate certificate = Make(name, key.get(), certificate_.get(), key_.get(),
                                   not_before_seconds, not_after_seconds, false);
    return {ToPem(certificate.get()), ToPem(key.get())};
  }

 private:
  certificates_internal::Certificate Make(const std::string& name, EVP_PKEY* subject_key,
                                          X509* issuer, EVP_PKEY* issuer_key,
                                          int64_t not_before_seconds, int64_t not_after_seconds,
                                          bool ca) {
    using namespace certificates_internal;
    Certificate certificate(X509_new());
    X509* x = certificate.get();
    MOBILENET_CHECK(X509_set_version(x, 2) == 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(x), not_before_seconds);
    X509_gmtime_adj(X509_getm_notAfter(x), not_after_seconds);
    MOBILENET_CHECK(X509_set_pubkey(x, subject_key) == 1);
    X509_NAME* subject = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    MOBILENET_CHECK(
        X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : subject) == 1);
    X509* signer = issuer != nullptr ? issuer : x;
    if (ca) {
      AddExtension(x, signer, NID_basic_constraints, "critical,CA:TRUE");
      AddExtension(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
      AddExtension(x, signer, NID_subject_key_identifier, "hash");
    } else {
      AddExtension(x, signer, NID_basic_constraints, "CA:FALSE");
      AddExtension(x, signer, NID_subject_alt_name, ("DNS:" + name).c_str());
      AddExtension(x, signer, NID_ext_key_usage, "serverAuth,clientAuth");
      AddExtension(x, signer, NID_authority_key_identifier, "keyid");
    }
    MOBILENET_CHECK(X509_sign(x, issuer_key != nullptr ? issuer_key : subject_key, EVP_sha256()) >
                    0);
    return certificate;
  }

  certificates_internal::Key key_;
  certificates_internal::Certificate certificate_;
  long serial_ = 0;
};

// Writes `contents` to `path` (replacing it whole, as a rotation would).
inline void WriteTestFile(const std::string& path, const std::string& contents) {
  const std::string temporary = path + ".new";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    file << contents;
    MOBILENET_CHECK(file.good());
  }
  MOBILENET_CHECK(std::rename(temporary.c_str(), path.c_str()) == 0);
}

}  // namespace mobilenet

#endif  // MOBILENET_SECURITY_CERTIFICATES_FOR_TEST_H_
