# frozen_string_literal: true

require 'fileutils'

# Decision logic of the walden cookbook. Everything under Walden is plain Ruby
# (no Chef), so the specs can exercise it without a converge.
module Walden
  # Raised for attribute values or host states the cookbook refuses, before
  # it changes anything.
  class ConfigError < StandardError; end

  # The envdir: one file per variable, read the way daemontools' envdir and
  # walden's own reader read it (first line, trailing blanks cut, dot files
  # skipped, an empty file unsets the variable).
  module Envdir
    OWNER = 'root'
    FILE_MODE = '0640'
    DIR_MODE = '0750'
    NAME_RE = /\A[A-Za-z_][A-Za-z0-9_]*\z/.freeze

    # A name that says it holds a secret marks the value secret, but a path
    # to a secret is not one itself. AWS_ACCESS_KEY_ID is hidden too: it is
    # half a credential and hiding it costs nothing.
    SECRET_RE = /SECRET|PASSWORD|PASSPHRASE|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE/.freeze
    PATH_NAME_RE = /_(PATH|FILE|DIR)\z/.freeze
    PATH_NAMES = %w[GOOGLE_APPLICATION_CREDENTIALS].freeze

    # One envdir file as the recipe writes it.
    Entry = Struct.new(:name, :content, :mode, :sensitive) do
      # The template variable: content without the newline the template adds.
      def value
        content.chomp
      end

      def to_a
        [name, content, mode, sensitive]
      end
    end

    module_function

    def valid_name?(name)
      name.is_a?(String) && name.match?(NAME_RE)
    end

    def secret?(name, extra = [])
      return true if extra.include?(name)
      return false if PATH_NAMES.include?(name) || name.match?(PATH_NAME_RE)

      name.match?(SECRET_RE)
    end

    # The string a value is written as. Anything the envdir readers would
    # change on the way back (a second line, a NUL, trailing blanks) is
    # refused rather than silently altered.
    def value_string(name, value)
      str = case value
            when String, Symbol, Integer, Float, true then value.to_s
            else raise ConfigError, "#{name}: a #{value.class} cannot be an envdir value"
            end
      if str.match?(/[\n\r\0]/)
        raise ConfigError, "#{name}: the value has a line break or NUL; envdir keeps only the first line"
      end
      raise ConfigError, "#{name}: the value ends in blanks, which envdir removes" if str != str.sub(/[ \t]+\z/, '')

      str
    end

    # [name, content, mode, sensitive] for every variable, sorted by name.
    def entries(env, extra_secrets = [])
      env.keys.sort.map do |name|
        Entry.new(name, "#{value_string(name, env[name])}\n", FILE_MODE, secret?(name, extra_secrets))
      end
    end

    # Files to delete: written by this cookbook before (listed in the
    # manifest) and no longer wanted. Files it never wrote are left alone.
    def removals(previous, desired)
      (previous - desired).sort
    end

    def manifest_content(names)
      header = "# Envdir variables written by Chef (cookbook walden). A variable dropped\n" \
               "# from the attributes is deleted from the envdir only if it is listed here.\n"
      header + names.sort.map { |n| "#{n}\n" }.join
    end

    # Only well-formed names count, so a damaged manifest can never make the
    # cookbook delete something like "../x".
    def parse_manifest(text)
      text.to_s.lines.map(&:strip).reject { |l| l.empty? || l.start_with?('#') }.select { |n| valid_name?(n) }.uniq
    end

    def read_manifest(path)
      File.file?(path) ? parse_manifest(File.read(path)) : []
    end

    # The value a variable has for the readers, or nil when unset.
    def read_value(dir, name)
      path = File.join(dir, name)
      return nil unless File.file?(path)

      line = File.open(path, 'rb') { |f| f.gets.to_s }.chomp.sub(/[ \t]+\z/, '')
      line.empty? ? nil : line.tr("\0", "\n")
    end

    # Writes into dir what the envdir will hold after the converge: the files
    # now in existing_dir, minus removals, overlaid with entries. Used to let
    # `walden check` judge the configuration before the real envdir changes.
    def stage!(dir, existing_dir:, entries:, removals:, group: nil)
      copy_existing(dir, existing_dir, removals + entries.map(&:name))
      entries.each { |e| File.write(File.join(dir, e.name), e.content) }
      secure!(dir, group)
    end

    def copy_existing(dir, existing_dir, skip)
      return unless File.directory?(existing_dir)

      Dir.children(existing_dir).each do |name|
        src = File.join(existing_dir, name)
        next if name.start_with?('.') || skip.include?(name) || !File.file?(src)

        FileUtils.cp(src, File.join(dir, name))
      end
    end

    def secure!(dir, group)
      files = Dir.children(dir).map { |n| File.join(dir, n) }
      FileUtils.chmod(DIR_MODE.to_i(8), dir)
      FileUtils.chmod(FILE_MODE.to_i(8), files)
      FileUtils.chown(OWNER, group, [dir, *files]) if group && Process.uid.zero?
    end
  end
end
